"""Running an analysis: tasks, the per-video pipeline, photos, long-video segments, Ray."""
