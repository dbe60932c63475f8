"""The training job: data, the CNN factory, augmentation, training, evaluation, model averaging and
the recipe search. Installed as ``emovid.training``."""
