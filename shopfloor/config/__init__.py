"""Plant configuration: pydantic models for plant.yaml and a loader whose errors name file, line and field."""

from shopfloor.config.loader import ConfigError, load_plant_config, parse_plant_config
from shopfloor.config.schema import PlantConfig

__all__ = ["ConfigError", "PlantConfig", "load_plant_config", "parse_plant_config"]
