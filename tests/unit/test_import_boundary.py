"""gan_core must stay usable without the service libraries (DESIGN.md, "Layers")."""

import subprocess
import sys

FORBIDDEN = ("ray", "prefect", "mlflow", "boto3", "botocore", "pipelines")


def test_gan_core_imports_no_service_library():
    code = (
        "import sys, gan_core, gan_core.config, gan_core.data, gan_core.models, gan_core.losses, "
        "gan_core.training, gan_core.metrics, gan_core.pictures, gan_core.outputs, gan_core.local_run\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_does_nothing_on_disk(tmp_path):
    code = "import gan_core.local_run, pipelines.cli"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    assert list(tmp_path.iterdir()) == []
