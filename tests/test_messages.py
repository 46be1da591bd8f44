"""What drgrader says to its users: its messages, cells and descriptions, read from the source."""


def test_no_user_facing_string_names_a_probe():
    """Probe 45 CI3: a warning ended in "probe 44 CH6", the project's own bookkeeping. Probe tags
    belong in comments and docstrings, never in a message, a CSV cell or a config description."""
    import ast
    import re
    from pathlib import Path

    import drgrader

    found = []
    for path in Path(drgrader.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        found += [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and re.search(r"\bprobe \d\d\b", node.value, re.IGNORECASE)]
    assert found == []
