"""Recipes: a YAML file naming a model, a dataset and a list of stages, run resumably in a run folder."""

from slimkit.recipe._registry import STAGES, StageType, load_stages, register_stage
from slimkit.recipe.context import StageContext
from slimkit.recipe.runner import RunResult, run_recipe
from slimkit.recipe.schema import Recipe, load_recipe, parse_recipe

__all__ = [
    "STAGES", "Recipe", "RunResult", "StageContext", "StageType", "load_recipe", "load_stages", "parse_recipe",
    "register_stage", "run_recipe",
]
