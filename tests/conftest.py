import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["EMOVID_DEBUG"] = "1"  # the CLI re-raises instead of printing one line, so tests see tracebacks


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance (2 CPUs) shared by the tests of one module (test_jobs runs its own cluster)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def analyzer():
    """A VideoAnalyzer (bundled model, default settings) loaded once for the whole session."""
    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import VideoAnalyzer

    return VideoAnalyzer(AnalyzeConfig(), num_threads=2)


@pytest.fixture(scope="session")
def analyzer_at():
    """``analyzer_at(fps)``: a VideoAnalyzer sampling at ``fps`` (None: every frame), one per rate."""
    from emovid.config import AnalyzeConfig
    from emovid.run.pipeline import VideoAnalyzer

    made = {}

    def get(fps):
        if fps not in made:
            made[fps] = VideoAnalyzer(AnalyzeConfig(fps=fps), num_threads=2)
        return made[fps]

    return get


@pytest.fixture(scope="session")
def small_model_file(tmp_path_factory):
    """A tiny model file without an ONNX graph (TensorFlow runs it), with a prior correction."""
    from tests.helpers import small_model

    return small_model(tmp_path_factory.mktemp("models") / "small.keras",
                       logit_offsets=[0.2, -0.1, 0.0, 0.1, 0.0, -0.2, 0.3])
