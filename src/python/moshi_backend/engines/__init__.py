"""Engine implementations and the choice between them."""
