"""Every ```python block of the README runs as written: each in a fresh namespace, in an empty
working folder, with the shipped datasets as the data root (as a user who set $GNNSCALE_DATA)."""
import pytest

from conftest import PROJECT

README = PROJECT / "README.md"


def python_blocks():
    """(the section heading above the block, its code) for every ```python block."""
    blocks, heading, code, fence = [], "top", [], None
    for line in README.read_text().splitlines():
        if fence is None and line.startswith("```"):
            fence, code = line[3:].strip(), []
        elif fence is not None and line.startswith("```"):
            if fence == "python":
                blocks.append((heading, "\n".join(code) + "\n"))
            fence = None
        elif fence is not None:
            code.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    assert fence is None, "README.md ends inside a ``` block"
    return blocks


BLOCKS = python_blocks()


def test_the_readme_has_its_python_blocks():
    # one per section of the Python API at least; a broken fence would silently drop blocks
    assert len(BLOCKS) >= 12
    assert all(code.strip() for _, code in BLOCKS)


@pytest.mark.parametrize("heading, code", BLOCKS, ids=[f"{i}-{h[:30]}" for i, (h, _) in enumerate(BLOCKS)])
def test_readme_block_runs(heading, code, data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GNNSCALE_DATA", str(data_root))
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)  # one process, as `python train.py` runs it
    exec(compile(code, f"README.md ({heading})", "exec"), {"__name__": "__readme__"})
