pytest_plugins = ["shopfloor.testing.plugin"]
