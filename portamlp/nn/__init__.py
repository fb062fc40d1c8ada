"""The network itself: activations, costs, initialisation, and the Network (forward pass,
backpropagation, prediction)."""
