import subprocess
import sys


def test_missing_extension_says_how_to_build_it():
    # Blocking gnnscale._C simulates an unbuilt checkout.
    code = "import sys; sys.modules['gnnscale._C'] = None\nimport gnnscale"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "extension (gnnscale._C) is not built" in result.stderr
    assert "make install" in result.stderr


def test_operators_are_registered_once_under_the_gnnscale_namespace():
    import torch

    import gnnscale  # noqa: F401

    for name in ("coo_to_csr", "csr_to_csc", "degree"):
        assert hasattr(torch.ops.gnnscale, name)
