"""ganaug: class-conditional and semi-supervised CLS-GANs for classifier data augmentation."""
from .config import TrainConfig
from .data import (DataNotFoundError, ImageSet, load_dataset, split_labeled,
                   split_with_validation)
from .experiment import build_model, evaluate, evaluate_run, fit, fit_seeds, sample_run
from .imbalance import balance_plan, class_counts, long_tail_counts, make_long_tailed
from .metrics import classification_metrics
from .checks import DiversityWarning, LabelAgreementWarning
from .batch_mixer import BatchMixer
from .mix import SyntheticMix
from .model import CLSGAN, StandingStatsWarning
from .nets import create_nets, list_archs
from .objectives import list_objectives
from .recipes import load_recipe, recipe_config
from .train import TrainState, train
from ._io import CheckpointError

__version__ = "0.1.0"

__all__ = [
    "CLSGAN", "TrainConfig", "build_model", "TrainState", "train", "fit", "fit_seeds", "evaluate",
    "evaluate_run", "load_recipe", "recipe_config",
    "sample_run", "load_dataset", "split_labeled", "split_with_validation", "ImageSet",
    "DataNotFoundError",
    "CheckpointError", "create_nets", "list_archs", "list_objectives",
    "classification_metrics", "SyntheticMix", "BatchMixer", "LabelAgreementWarning",
    "DiversityWarning", "StandingStatsWarning",
    "make_long_tailed", "class_counts", "long_tail_counts", "balance_plan", "__version__",
]
