"""Models: load a project's SQL models and explores, and scaffold new projects."""

from strata.transform.config import (
    ColumnDoc,
    ExploreConfig,
    ExploreDimension,
    Layer,
    Materialization,
    ModelConfig,
    ProjectConfig,
    ProjectError,
)
from strata.transform.project import Project, ProjectModel, load_project, validate_project
from strata.transform.scaffold import init_project

__all__ = [
    "ColumnDoc",
    "ExploreConfig",
    "ExploreDimension",
    "Layer",
    "Materialization",
    "ModelConfig",
    "Project",
    "ProjectConfig",
    "ProjectError",
    "ProjectModel",
    "init_project",
    "load_project",
    "validate_project",
]
