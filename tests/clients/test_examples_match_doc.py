"""The copies under examples/ are the user's SSE_CLIENTS.md code, word for word."""

from __future__ import annotations

import pytest

from tests.clients.support import DOC_BLOCKS, EXAMPLES, doc_code_blocks, doc_path, normalise


@pytest.mark.parametrize("name", sorted(DOC_BLOCKS))
def test_copy_equals_the_documented_example(name: str) -> None:
    doc = doc_path()
    if doc is None:
        pytest.skip(
            "SSE_CLIENTS.md not found (looked in ../shared next to the repository and "
            "/work/shared): the verbatim check of the example copies is skipped"
        )
    blocks = doc_code_blocks(doc.read_text())
    heading = DOC_BLOCKS[name]
    assert heading in blocks, f"{doc} has no code block under {heading!r}"
    copy = normalise((EXAMPLES / name).read_text())
    documented = normalise(blocks[heading])
    assert copy == documented, f"tests/clients/examples/{name} differs from {doc} ({heading})"
