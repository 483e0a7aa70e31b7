"""Running the search: the data and the proxy recipe (settings), one trial's proxy training,
the Optuna study and the Ray Tune trials, the run folder and its trial table.

The public names are re-exported here. Heavy modules (torch, Ray) are imported by the
submodules that need them, when they need them: importing this package imports neither.
:mod:`~mdsearch.search.progress` (Ray Tune callbacks) imports Ray and
:mod:`~mdsearch.search.grid_sampler` Optuna, so their names are not re-exported; :mod:`~mdsearch.search.proxy_check` holds the proxy check, :mod:`~mdsearch.search.supernet`
the weight-sharing supernet's training, :mod:`~mdsearch.search.subnet_scoring` the scoring of
its sub-networks.
"""

from .datasets import DataError, Dataset, load_dataset, parse_data_spec
from .front import front_size, non_dominated, pareto_layers
from .latency_for_search import check_latency_device, search_latency_table
from .orchestrate import FinishedSearch, Prepared, prepare, run_search
from .proxy import ProxyResult, TrialTimeout, proxy_train
from .proxy_data import load_proxy_data, resolution_warnings, scored_validation_labels
from .run_settings import (
    EARLY_STOP,
    SAMPLERS,
    SEARCH_OBJECTIVES,
    STRATEGIES,
    SearchSettings,
    parse_objectives,
)
from .runfolder import RunError, RunFolder, RunFolderWriteError
from .scored_labels import (
    BOTH_CLASSES,
    LABEL_RULE,
    MIN_NEGATIVES,
    MIN_POSITIVES,
    LabelRule,
    ScoredLabels,
)
from .settings import (
    DEFAULT_VAL_FRACTION,
    FULL_DATA,
    FULL_RECIPE,
    PROXY_DATA,
    PROXY_RECIPE,
    DataSettings,
    SettingsError,
    TrainRecipe,
)
from .study import (
    STUDY_NAME,
    SUPERNET_STUDY_NAME,
    ConfirmPolicy,
    InOrder,
    covering_plan,
    make_sampler,
    proxy_search_class,
)
from .subnet_scoring import recalibrate_batchnorm, score_subnet
from .supernet import (
    SUPERNET_RECIPE,
    SandwichStep,
    SupernetSettings,
    SupernetTraining,
    load_supernet,
    proxy_equivalents,
    random_subnet,
    train_supernet,
)
from .supernet_candidates import rank_candidates
from .trial import FAULT_KINDS, TEST_FAULT_ENV, TrialContext, run_trial
from .trial_table import (
    PROXY_KINDS,
    TrialTable,
    label_column,
    proxy_kind,
    read_trial_table,
    stage_list,
)

__all__ = [
    "BOTH_CLASSES",
    "ConfirmPolicy",
    "DEFAULT_VAL_FRACTION",
    "EARLY_STOP",
    "FAULT_KINDS",
    "FULL_DATA",
    "FULL_RECIPE",
    "LABEL_RULE",
    "MIN_NEGATIVES",
    "MIN_POSITIVES",
    "PROXY_DATA",
    "PROXY_KINDS",
    "PROXY_RECIPE",
    "SAMPLERS",
    "SEARCH_OBJECTIVES",
    "STRATEGIES",
    "STUDY_NAME",
    "SUPERNET_RECIPE",
    "SandwichStep",
    "SUPERNET_STUDY_NAME",
    "TEST_FAULT_ENV",
    "DataError",
    "DataSettings",
    "Dataset",
    "FinishedSearch",
    "InOrder",
    "LabelRule",
    "Prepared",
    "ProxyResult",
    "RunError",
    "RunFolder",
    "RunFolderWriteError",
    "ScoredLabels",
    "SearchSettings",
    "SettingsError",
    "SupernetSettings",
    "SupernetTraining",
    "TrainRecipe",
    "TrialContext",
    "TrialTable",
    "TrialTimeout",
    "check_latency_device",
    "covering_plan",
    "front_size",
    "label_column",
    "load_dataset",
    "load_proxy_data",
    "load_supernet",
    "make_sampler",
    "non_dominated",
    "pareto_layers",
    "parse_data_spec",
    "parse_objectives",
    "prepare",
    "proxy_equivalents",
    "proxy_kind",
    "proxy_search_class",
    "proxy_train",
    "random_subnet",
    "rank_candidates",
    "read_trial_table",
    "recalibrate_batchnorm",
    "resolution_warnings",
    "run_search",
    "run_trial",
    "score_subnet",
    "scored_validation_labels",
    "search_latency_table",
    "stage_list",
    "train_supernet",
]
