"""Finding faces: the YuNet detector and face crops."""
