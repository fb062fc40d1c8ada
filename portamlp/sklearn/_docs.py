"""The numpydoc text both estimators share: their common parameters and fitted attributes,
spliced into ``MLPClassifier``'s and ``MLPRegressor``'s docstrings (each adds its own)."""

__all__ = ["PARAMETERS_DOC", "ATTRIBUTES_DOC"]

#: The parameters both estimators document alike (numpydoc lines, indented for a class body).
PARAMETERS_DOC = """
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer (``()`` for none: a linear or softmax model).
    activation : {"relu", "logistic", "tanh", "identity", "leaky_relu"} or a registered name, \
default="relu"
        Hidden-layer activation: any entry of :data:`portamlp.nn.activations.ACTIVATIONS`, by
        scikit-learn's name where it has one (``"logistic"`` is portamlp's ``"sigmoid"``).
    solver : {"adam", "sgd", "lbfgs"} or a registered name, default="adam"
        Any optimizer of :data:`portamlp.training.optimizers.OPTIMIZERS`. ``"sgd"`` takes
        ``momentum`` and ``nesterovs_momentum``, ``"adam"`` takes ``beta_1``, ``beta_2`` and
        ``epsilon``; ``"lbfgs"`` (full batch, recommended for small data sets) takes
        ``max_iter`` as iterations, ``max_fun`` and ``tol``; any other trains with its
        hyper-parameters' declared defaults.
    alpha : float, default=1e-4
        Strength of the L2 penalty, as in scikit-learn: it becomes portamlp's
        ``weight_decay = alpha / (batch_size * mean(sample_weight))`` (for L-BFGS,
        ``batch_size`` is the number of samples).
    batch_size : int or "auto", default="auto"
        ``"auto"`` is ``min(200, n_samples)``; larger sizes are clipped (with a warning).
        Not used by ``"lbfgs"``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the ``"sgd"`` solver (ignored by the others): ``"invscaling"`` sets the
        rate to ``learning_rate_init / (t + 1) ** power_t`` after each epoch, ``t`` the samples
        seen; ``"adaptive"`` divides it by 5 when ``n_iter_no_change`` epochs do not improve by
        ``tol`` (stopping once it is below 1e-6).
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    max_iter : int, default=200
        Epochs (passes over the training data); iterations for ``"lbfgs"``.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the order of the samples, the validation split and dropout.
    tol : float, default=1e-4
        Improvement of the training loss (or, with early stopping, of the validation score)
        that counts; for ``"lbfgs"``, the largest gradient component at which it stops.
    verbose : bool, default=False
        Print the loss (and validation score) of every epoch, as scikit-learn does.
    warm_start : bool, default=False
        ``fit`` continues the fitted network (with a fresh optimizer, as in scikit-learn).
    momentum : float, default=0.9
        SGD momentum, in [0, 1).
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when its score has not
        improved by ``tol`` for more than ``n_iter_no_change`` epochs, ending with the best
        epoch's weights (stochastic solvers only).
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's decay rates and ε (portamlp's ``beta1``, ``beta2``, ``epsilon``).
    n_iter_no_change : int or numpy.inf, default=10
        ``numpy.inf`` turns the no-improvement stop off.
    max_fun : int, default=15000
        ``"lbfgs"`` stops once the loss and gradient have been evaluated more than this many
        times.
    init : {"glorot", "he", "scaled", "normal", "auto"}, default="glorot"
        ``"glorot"`` is scikit-learn's own initialisation (Glorot-uniform weights and biases),
        drawn from ``random_state`` as scikit-learn draws it: the same ``random_state`` gives
        scikit-learn's initial weights (but for a binary problem's second output unit). The
        others are portamlp's initialisations (:data:`portamlp.nn.init.INITS`).
    dtype : {"float32", "float64"} or None, default=None
        Floating type of the network and data; None follows ``X`` as scikit-learn does
        (float32 stays float32, anything else becomes float64).
    backend : {"numpy", "cupy", "torch", "array_api_strict"} or None, default=None
        Where to train; None: where ``X`` lives (NumPy unless array API dispatch is on).
    device : str, int or None, default=None
        The backend's device ("cuda:1", 1, "cpu", an array-api-strict device name).
    dropout, input_dropout : float, default=0.0
        portamlp's dropout of hidden and input units during training (not with ``"lbfgs"``).
    max_norm : float or None, default=None
        portamlp's max-norm constraint on each unit's incoming weights (not with
        ``"lbfgs"``).
    distortions : dict or None, default=None
        Distorted copies of image rows (square images, read row by row), drawn afresh each
        mini-batch: a dict of :func:`portamlp.train`'s distortion options, e.g.
        ``{"rotation": 10, "elastic_alpha": 34}`` (keys ``shift``, ``rotation``, ``zoom``,
        ``shear``, ``elastic_alpha``, ``elastic_sigma``, ``flip``; not with ``"lbfgs"``)."""

#: The fitted attributes both estimators document alike.
ATTRIBUTES_DOC = """
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had column names (a DataFrame).
    coefs_, intercepts_ : list of ndarray
        NumPy copies of the weights in scikit-learn's ``(n_in, n_out)`` layout and the biases.
    loss_ : float
        The last epoch's (or L-BFGS iteration's) training loss, with scikit-learn's L2 term.
    loss_curve_ : list of float
        The loss of each epoch (stochastic solvers only, as in scikit-learn).
    best_loss_ : float or None
        The lowest training loss (stochastic solvers without early stopping).
    n_iter_ : int
        Epochs (L-BFGS iterations) run by the last ``fit``; 1 after ``partial_fit``.
    t_ : int
        Training samples seen, over all calls.
    n_layers_, n_outputs_ : int

    Raises
    ------
    portamlp.checks.InvalidParameterError
        From ``fit`` / ``partial_fit``, for an invalid parameter: both a ``ValueError`` and a
        ``TypeError``, as scikit-learn's own ``InvalidParameterError``."""
