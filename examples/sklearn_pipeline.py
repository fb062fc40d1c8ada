"""portamlp in a scikit-learn pipeline: a grid search on scikit-learn's digits (8×8 images).

The estimator is ``portamlp.sklearn.MLPClassifier``, a drop-in for scikit-learn's own: the
pipeline, the grid search (two worker processes), cross-validation and the parameters are
scikit-learn's. Takes a few seconds on a laptop CPU. Needs scikit-learn
(``pip install "portamlp[sklearn]"``).

    python examples/sklearn_pipeline.py
"""

import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from portamlp.sklearn import MLPClassifier

GRID = {"mlpclassifier__hidden_layer_sizes": [(32,), (100,)],
        "mlpclassifier__alpha": [1e-4, 1e-2]}


def main(max_iter=30, n_jobs=2, grid=None):
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier(max_iter=max_iter, learning_rate_init=0.01,
                                       random_state=0))
    search = GridSearchCV(pipe, GRID if grid is None else grid, cv=3, n_jobs=n_jobs)
    with warnings.catch_warnings():  # a short run stops at max_iter, as intended
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x_train, y_train)
    print(f"best parameters: {search.best_params_}")
    print(f"cross-validated accuracy: {search.best_score_:.2%}")
    accuracy = search.score(x_test, y_test)
    print(f"test accuracy: {accuracy:.2%} on {len(y_test)} held-out images")
    return search, accuracy


if __name__ == "__main__":
    main()
