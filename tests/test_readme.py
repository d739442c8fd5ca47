"""The README's code runs as written."""
import pathlib
import re
import warnings

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    ns = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Numba cannot cache kernels defined in exec'd code
        for block in blocks:
            exec(compile(block, str(README), "exec"), ns)
    assert ns["dy0"].shape == (2,) and ns["dt"].shape == (200,)
