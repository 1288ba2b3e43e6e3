"""The algorithm registry: algorithm name -> scikit-learn estimator classes and hyperparameters.

A plain dict that imports nothing heavy, so the compiler can check ``algorithm`` and
``hyperparameters`` (and the names of a ``tune`` search space) without loading scikit-learn.
The hyperparameter names were taken from scikit-learn 1.9's ``get_params()``; at run time the
estimator's own ``get_params()`` is the authority (see :func:`build_estimator`).

>>> sorted(ALGORITHMS["knn"].problems)
['classification', 'regression']
>>> "n_estimators" in ALGORITHMS["random_forest"].hyperparameters
True
>>> suggest("random_forst", ALGORITHMS)
'random_forest'
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable

# Settings that are not model hyperparameters: accepted in ``hyperparameters`` but never
# offered for tuning (they change speed or logging, not the model).
_RUNTIME_SETTINGS = frozenset({"n_jobs", "verbose", "warm_start", "copy_X", "random_state", "cache_size"})


@dataclass(frozen=True)
class Algorithm:
    """One algorithm: where its estimator classes live and what it accepts."""

    name: str
    classifier: str | None  # "module:Class"
    regressor: str | None
    accepted: frozenset[str]  # every name ``hyperparameters`` may set
    staged: bool = False  # can stop early between boosting stages (reports intermediate values)
    doc: str = ""

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(p for p, path in (("classification", self.classifier), ("regression", self.regressor)) if path)

    @property
    def hyperparameters(self) -> frozenset[str]:
        """The names a search space may tune (runtime settings such as ``n_jobs`` excluded)."""
        return self.accepted - _RUNTIME_SETTINGS

    def estimator_path(self, problem: str) -> str | None:
        return self.classifier if problem == "classification" else self.regressor


def _algo(name: str, classifier: str | None, regressor: str | None, accepted: str, **kw: Any) -> Algorithm:
    return Algorithm(name, classifier, regressor, frozenset(accepted.split()), **kw)


_TREE = (
    "ccp_alpha class_weight criterion max_depth max_features max_leaf_nodes min_impurity_decrease "
    "min_samples_leaf min_samples_split min_weight_fraction_leaf monotonic_cst random_state"
)
_FOREST = _TREE + " bootstrap max_samples n_estimators n_jobs oob_score verbose warm_start"

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in [
        _algo("random_forest", "sklearn.ensemble:RandomForestClassifier",
              "sklearn.ensemble:RandomForestRegressor", _FOREST, doc="random forest of decision trees"),
        _algo("extra_trees", "sklearn.ensemble:ExtraTreesClassifier",
              "sklearn.ensemble:ExtraTreesRegressor", _FOREST, doc="extremely randomized trees"),
        _algo("gradient_boosting", "sklearn.ensemble:GradientBoostingClassifier",
              "sklearn.ensemble:GradientBoostingRegressor",
              "alpha ccp_alpha criterion learning_rate loss max_depth max_features max_leaf_nodes "
              "min_impurity_decrease min_samples_leaf min_samples_split min_weight_fraction_leaf "
              "n_estimators n_iter_no_change random_state subsample tol validation_fraction verbose warm_start",
              staged=True, doc="gradient-boosted trees (reports intermediate values per stage)"),
        _algo("hist_gradient_boosting", "sklearn.ensemble:HistGradientBoostingClassifier",
              "sklearn.ensemble:HistGradientBoostingRegressor",
              "categorical_features class_weight early_stopping interaction_cst l2_regularization "
              "learning_rate loss max_bins max_depth max_features max_iter max_leaf_nodes min_samples_leaf "
              "monotonic_cst n_iter_no_change quantile random_state scoring tol validation_fraction "
              "verbose warm_start", doc="histogram-based gradient boosting (fast, handles missing values)"),
        _algo("adaboost", "sklearn.ensemble:AdaBoostClassifier", "sklearn.ensemble:AdaBoostRegressor",
              "learning_rate loss n_estimators random_state", doc="AdaBoost"),
        _algo("decision_tree", "sklearn.tree:DecisionTreeClassifier", "sklearn.tree:DecisionTreeRegressor",
              _TREE + " splitter", doc="a single decision tree"),
        _algo("logistic_regression", "sklearn.linear_model:LogisticRegression", None,
              "C class_weight dual fit_intercept intercept_scaling l1_ratio max_iter n_jobs penalty "
              "random_state solver tol verbose warm_start", doc="logistic regression (classification only)"),
        _algo("linear_regression", None, "sklearn.linear_model:LinearRegression",
              "copy_X fit_intercept n_jobs positive tol", doc="ordinary least squares (regression only)"),
        _algo("ridge", "sklearn.linear_model:RidgeClassifier", "sklearn.linear_model:Ridge",
              "alpha class_weight copy_X fit_intercept max_iter positive random_state solver tol",
              doc="L2-regularized linear model"),
        _algo("lasso", None, "sklearn.linear_model:Lasso",
              "alpha copy_X fit_intercept max_iter positive precompute random_state selection tol warm_start",
              doc="L1-regularized linear regression (regression only)"),
        _algo("elastic_net", None, "sklearn.linear_model:ElasticNet",
              "alpha copy_X fit_intercept l1_ratio max_iter positive precompute random_state selection "
              "tol warm_start", doc="L1+L2-regularized linear regression (regression only)"),
        _algo("svm", "sklearn.svm:SVC", "sklearn.svm:SVR",
              "C break_ties cache_size class_weight coef0 decision_function_shape degree epsilon gamma "
              "kernel max_iter probability random_state shrinking tol verbose", doc="kernel support vector machine"),
        _algo("linear_svm", "sklearn.svm:LinearSVC", "sklearn.svm:LinearSVR",
              "C class_weight dual epsilon fit_intercept intercept_scaling loss max_iter multi_class "
              "penalty random_state tol verbose", doc="linear support vector machine"),
        _algo("knn", "sklearn.neighbors:KNeighborsClassifier", "sklearn.neighbors:KNeighborsRegressor",
              "algorithm leaf_size metric metric_params n_jobs n_neighbors p weights", doc="k nearest neighbours"),
        _algo("sgd", "sklearn.linear_model:SGDClassifier", "sklearn.linear_model:SGDRegressor",
              "alpha average class_weight early_stopping epsilon eta0 fit_intercept l1_ratio learning_rate "
              "loss max_iter n_iter_no_change n_jobs penalty power_t random_state shuffle tol "
              "validation_fraction verbose warm_start", doc="linear model trained by stochastic gradient descent"),
        _algo("mlp", "sklearn.neural_network:MLPClassifier", "sklearn.neural_network:MLPRegressor",
              "activation alpha batch_size beta_1 beta_2 early_stopping epsilon hidden_layer_sizes "
              "learning_rate learning_rate_init loss max_fun max_iter momentum n_iter_no_change "
              "nesterovs_momentum power_t random_state shuffle solver tol validation_fraction verbose warm_start",
              doc="multi-layer perceptron"),
        _algo("naive_bayes", "sklearn.naive_bayes:GaussianNB", None, "priors var_smoothing",
              doc="Gaussian naive Bayes (classification only)"),
    ]
}

ALGORITHM_NAMES: tuple[str, ...] = tuple(sorted(ALGORITHMS))


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelled name, or None."""
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    best = suggest(name, candidates)
    return f"; did you mean {best!r}?" if best else ""


def check_hyperparameter_names(algorithm: str, names: Iterable[str]) -> None:
    """Raise ValueError for a name the algorithm does not accept (used by the param models,
    so the compiler reports it at compile time)."""
    algo = ALGORITHMS.get(algorithm)
    if algo is None:
        return  # the algorithm itself is reported by its own field
    for name in sorted(names):
        if name not in algo.accepted:
            raise ValueError(
                f"unknown hyperparameter {name!r} for algorithm {algorithm!r}{did_you_mean(name, algo.accepted)}"
            )


def check_problem(algorithm: str, problem: str) -> None:
    algo = ALGORITHMS.get(algorithm)
    if algo is not None and problem in ("classification", "regression") and problem not in algo.problems:
        raise ValueError(
            f"algorithm {algorithm!r} does not support {problem}; it supports {', '.join(algo.problems)}"
        )
