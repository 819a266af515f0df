"""List the Python functions of fastce longer than a limit (docstrings not counted).

    python tools/function_lengths.py [LIMIT]
"""
import ast
import pathlib
import sys


def code_lines(node):
    """Lines of a function without its docstring."""
    lines = node.end_lineno - node.lineno + 1
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                              ast.Constant):
        if isinstance(body[0].value.value, str):
            lines -= body[0].end_lineno - body[0].lineno + 1
    return lines


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    root = pathlib.Path(__file__).resolve().parent.parent / "fastce"
    long = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if code_lines(node) > limit:
                    long.append((path.relative_to(root.parent), node.name, code_lines(node)))
    for path, name, lines in long:
        print(f"{path}: {name}: {lines} lines")
    print(f"{len(long)} functions over {limit} lines (docstrings not counted)")
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
