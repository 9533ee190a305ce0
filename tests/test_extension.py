import subprocess
import sys


def test_missing_extension_says_how_to_build_it():
    # Blocking gnnscale._C simulates an unbuilt checkout.
    # `import gnnscale` alone loads nothing compiled (the command line's help works without it);
    # the first use of the operators, directly or through the graph type, says what to do.
    for first_use in ("from gnnscale import ops", "from gnnscale import Graph"):
        code = f"import sys; sys.modules['gnnscale._C'] = None\nimport gnnscale\n{first_use}"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode != 0, first_use
        assert "extension (gnnscale._C) is not built" in result.stderr
        assert "make install" in result.stderr
    code = "import sys; sys.modules['gnnscale._C'] = None\nimport gnnscale\nprint(gnnscale.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    code = "import sys; sys.modules['gnnscale._C'] = None\nfrom gnnscale.programs.main import main\nmain(['--help'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: gnnscale" in result.stdout, result.stderr


def test_operators_are_registered_once_under_the_gnnscale_namespace():
    import torch

    from gnnscale import ops  # noqa: F401

    for name in ("coo_to_csr", "csr_to_csc", "degree"):
        assert hasattr(torch.ops.gnnscale, name)
