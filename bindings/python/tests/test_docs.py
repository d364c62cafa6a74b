"""The examples users copy run as written: every ```python block of the
README and the package docstring's example. In the README, each print
line's comment is what it prints."""

import contextlib
import io
import os
import re
import textwrap

import nim_signaling as ns

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_blocks():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def expected_prints(code):
    """The comment of each line that prints, in order."""
    wanted = []
    for line in code.splitlines():
        if re.match(r"\s*print\(", line):
            m = re.search(r"\)\s+#\s?(.*)$", line)
            assert m, "a print without its output in a comment: %r" % line
            wanted.append(m.group(1).strip())
    return wanted


def run(code, name):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
    return out.getvalue().splitlines()


def test_readme_examples_print_what_their_comments_say():
    blocks = readme_blocks()
    assert len(blocks) >= 2, "README.md: the full call and the asyncio example"
    for i, code in enumerate(blocks):
        wanted = expected_prints(code)
        assert wanted, "README block %d prints nothing to check" % i
        assert run(code, "README.md block %d" % i) == wanted


def test_module_docstring_example_runs():
    doc = ns.__doc__
    start = doc.index("    import nim_signaling as ns")
    end = doc.index("\n\n", start)
    code = textwrap.dedent(doc[start:end])
    printed = run(code, "nim_signaling.__doc__")
    assert len(printed) == 1 and printed[0], printed  # the room's channelId


if __name__ == "__main__":  # without pytest: what tests/bindings_python.rs runs in the wheel's venv
    test_readme_examples_print_what_their_comments_say()
    test_module_docstring_example_runs()
    print("the README's and the docstring's examples ran as written")
