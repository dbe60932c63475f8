"""The emotion CNN: model files, their metadata and the classifier that runs them."""
