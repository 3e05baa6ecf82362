from shopfloor.cli import app

app()
