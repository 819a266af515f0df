"""Write the type stubs (.pyi) of fastce's loss modules from their run-time signatures.

A loss's return type depends on its keywords: a float64 for a reduced loss, an array
for reduction="none", and a tuple when return_grad / return_hessian ask for more. A
stub says so with @overload, one signature per case, each repeating the whole
keyword list. Written by hand, that is 7 copies of every keyword of every loss, to be
kept in step with the code. So the stubs are generated at build time (setup.py calls
write_stubs for the wheel and for in-place builds), from two sources:

- the parameter names, their order and defaults: read from the module's source with
  ast, so a keyword added to a function appears in its stub by itself;
- the tables below: the type of each parameter name (the same name means the same
  thing across fastce), and per function, the cases that change its return type.

tests/test_typing.py then checks the installed stubs against the run-time signatures
(mypy.stubtest) and a typed usage example against the stubs (mypy --strict).

    python tools/stubgen.py OUTDIR    # writes OUTDIR/fastce/<module>.pyi
"""
import ast
import os
import sys

FLOAT_ARRAY = "_FloatArray"
TRUE = "Literal[True]"

# The type of a parameter, by name, wherever it appears.
PARAMETER_TYPES = {
    "logits": "ArrayLike", "target": "ArrayLike", "probs": "ArrayLike",
    "scores": "ArrayLike", "x": "ArrayLike", "log_probs": "ArrayLike", "p": "ArrayLike",
    "q": "ArrayLike", "input": "ArrayLike", "y": "ArrayLike", "coef": "ArrayLike",
    "hidden": "ArrayLike", "X": "_DesignMatrix",
    "weight": "ArrayLike | None", "pos_weight": "ArrayLike | None",
    "sample_weight": "ArrayLike | None", "where": "ArrayLike | None",
    "b": "ArrayLike | None", "bias": "ArrayLike | None",
    "grad_out": "NDArray[Any] | None", "out": "NDArray[Any] | None",
    "n_threads": "int | None", "chunk_size": "int | None", "base": "float | None",
    "ignore_index": "int", "axis": "int",
    "label_smoothing": "float", "alpha": "float", "gamma": "float", "l2": "float",
    "keepdims": "bool", "log_target": "bool",
}

# Where one function gives a name another type.
FUNCTION_PARAMETER_TYPES = {
    ("log_softmax", "axis"): "_Axes",
    ("softmax", "axis"): "_Axes",
    ("logsumexp", "axis"): "_Axes",
    ("fused_linear_cross_entropy", "weight"): "ArrayLike",
    ("logistic_regression_loss", "intercept"): "float",
    ("softmax_regression_loss", "intercept"): "ArrayLike | None",
}

# The keywords that select what a function returns (a flag's False is its default).
SELECTORS = ("reduction", "return_grad", "return_hessian", "return_sign")


def _flag_cases(*extra_outputs):
    """The cases of a function with return_grad: off, then on (adding extra_outputs)."""
    return [({}, ()), ({"return_grad": TRUE}, extra_outputs)]


GRAD_CASES = _flag_cases(FLOAT_ARRAY)
GRAD_HESSIAN_CASES = GRAD_CASES + [
    ({"return_grad": "bool", "return_hessian": TRUE}, (FLOAT_ARRAY, FLOAT_ARRAY))]

# Per function: the cases that change its return type, each a pair (the selector
# keywords' types, the outputs added after the loss), tried in this order; a reduction
# keyword doubles each case (reduced: float64, "none": an array). Functions not named
# here have one signature, returning an array.
RETURN_CASES = {
    "binary_cross_entropy_with_logits": GRAD_HESSIAN_CASES,
    "logistic_loss": GRAD_HESSIAN_CASES,
    "cross_entropy": GRAD_HESSIAN_CASES,
    "binary_cross_entropy": GRAD_CASES,
    "sigmoid_focal_loss": GRAD_CASES,
    "nll_loss": GRAD_CASES,
    "kl_divergence_with_logits": GRAD_CASES,
    "kl_div": GRAD_CASES,
    "entropy": [({}, ())],
    "kl_divergence": [({}, ())],
    "js_divergence": [({}, ())],
    "categorical_cross_entropy": [({}, ())],
    "logistic_regression_loss": _flag_cases(FLOAT_ARRAY, "float"),
    "softmax_regression_loss": _flag_cases(FLOAT_ARRAY, f"{FLOAT_ARRAY} | None"),
    # The gradient of the bias comes only when a bias is given.
    "fused_linear_cross_entropy": [
        ({}, ()),
        ({"bias": "None", "return_grad": TRUE}, (FLOAT_ARRAY, FLOAT_ARRAY)),
        ({"bias": "ArrayLike", "return_grad": TRUE}, (FLOAT_ARRAY,) * 3)],
    # An array, or a NumPy scalar when no axis is left; with return_sign=True,
    # the pair (result, sign) of such values.
    "logsumexp": [({}, ()), ({"return_sign": TRUE}, ("Any",))],
}
UNREDUCED_RESULT = {"logsumexp": "Any"}  # the result of a function without reduction
REDUCED = {"kl_div": "_KLDivReduce"}  # the reduced values of reduction, if not _Reduce

ALIASES = {
    "_FloatArray": "NDArray[np.floating[Any]]",
    "_Reduce": 'Literal["mean", "sum"]',
    "_KLDivReduce": 'Literal["mean", "batchmean", "sum"]',
    "_Axes": "int | tuple[int, ...] | None",
    # X may also be a scipy.sparse matrix (CSR; other formats are converted), which
    # is not an ArrayLike: hence Any.
    "_DesignMatrix": "Any",
}

# The modules (paths below fastce/, without .py) that get a generated stub. The
# reference has the signatures of its compiled counterparts, so the same tables type it.
MODULES = ("binary_losses", "softmax_losses", "information", "linear",
           "reference/__init__", "reference/linear", "dask")

HEADER = """\
# Type stubs for {module} (PEP 561), generated by tools/stubgen.py from the
# run-time signatures; tests/test_typing.py checks them with mypy.stubtest.
import os
from typing import Any, Literal, Sequence, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
"""

# fastce.dask takes Dask arrays (or paths) and returns Dask arrays, not yet computed:
# one signature a function, its own types, and no overloads.
DASK_HEADER = """\
from dask.array import Array

from fastce.profiling import ProfileReport, _Kind, _Task

# Dask arrays, NumPy arrays and array-likes, or paths (.npy, .h5:DATASET, .zarr).
_Input = Array | ArrayLike | str | os.PathLike[str] | Any
_Loss = Array | tuple[Array, Array] | tuple[Array, Array, Array]
"""
DASK_PARAMETER_TYPES = {
    "predictions": "_Input", "labels": "_Input", "sample_weight": "_Input | None",
    "kind": "_Kind", "task": "_Task", "n_bins": "int", "top_k": "int",
    "label_issues": "bool", "confusion_max_classes": "int",
    "class_names": "Sequence[Any] | None", "split_every": "int",
    "logits": "Array | ArrayLike", "target": "Array | ArrayLike",
    "reduction": "str", "return_grad": "bool", "return_hessian": "bool",
    "grad_out": "None",
}
DASK_FUNCTION_PARAMETER_TYPES = {
    ("binary_cross_entropy_with_logits", "weight"): "Array | ArrayLike | None"}
DASK_RESULTS = {"profile": "ProfileReport"}


class _Parameter:
    def __init__(self, name, default, keyword_only):
        self.name = name
        self.default = default  # the default's source text, or None when required
        self.keyword_only = keyword_only


def _parameters(function):
    """The parameters of an ast.FunctionDef, with their defaults' source text."""
    arguments = function.args
    positional = arguments.posonlyargs + arguments.args
    defaults = [None] * (len(positional) - len(arguments.defaults)) + arguments.defaults
    parameters = [_Parameter(arg.arg, default and ast.unparse(default), False)
                  for arg, default in zip(positional, defaults)]
    parameters += [_Parameter(arg.arg, default and ast.unparse(default), True)
                   for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults)]
    return parameters


def _signature(name, parameters, selected, result, overloaded):
    """One `def` block: the parameters typed, with `selected` overriding the tables."""
    lines = ["@overload"] if overloaded else []
    lines.append(f"def {name}(")
    star_written = False
    for parameter in parameters:
        if parameter.keyword_only and not star_written:
            lines.append("    *,")
            star_written = True
        annotation = selected.get(parameter.name) or FUNCTION_PARAMETER_TYPES.get(
            (name, parameter.name)) or PARAMETER_TYPES[parameter.name]
        if parameter.default is None:
            default = ""
        elif overloaded and parameter.name in selected and not _accepts_default(
                selected[parameter.name], parameter.default):
            default = ""  # this case must be asked for: the default selects another
        else:
            default = " = ..." if overloaded else f" = {parameter.default}"
        lines.append(f"    {parameter.name}: {annotation}{default},")
    lines.append(f") -> {result}: ...")
    return lines


def _accepts_default(annotation, default):
    """Whether a selector's annotation in one case admits the run-time default."""
    if annotation in ("bool", "str"):
        return True
    if annotation in (TRUE, "Literal[False]"):
        return annotation == f"Literal[{default}]"
    if annotation == "None":
        return default == "None"
    if annotation == "ArrayLike":
        return default != "None"
    literal_values = {"_Reduce": ("'mean'", "'sum'"),
                      "_KLDivReduce": ("'mean'", "'batchmean'", "'sum'"),
                      'Literal["none"]': ("'none'",)}
    return default in literal_values[annotation]


def _dask_function_stub(function):
    name = function.name
    parameters = _parameters(function)
    selected = {parameter.name: DASK_FUNCTION_PARAMETER_TYPES.get(
        (name, parameter.name), DASK_PARAMETER_TYPES.get(parameter.name))
        for parameter in parameters}
    selected = {key: value for key, value in selected.items() if value is not None}
    return _signature(name, parameters, selected, DASK_RESULTS.get(name, "_Loss"),
                      overloaded=False)


def _function_stub(function):
    name = function.name
    parameters = _parameters(function)
    names = {parameter.name for parameter in parameters}
    if name not in RETURN_CASES:
        return _signature(name, parameters, {}, FLOAT_ARRAY, overloaded=False)
    reduce_variants = [(REDUCED.get(name, "_Reduce"), "np.float64"),
                       ('Literal["none"]', FLOAT_ARRAY)]
    if "reduction" not in names:
        reduce_variants = [(None, UNREDUCED_RESULT.get(name, "np.float64"))]
    flags = [flag for flag in SELECTORS[1:] if flag in names]
    lines = []
    for case_types, extra_outputs in RETURN_CASES[name]:
        for reduction_type, loss_type in reduce_variants:
            selected = {flag: "Literal[False]" for flag in flags}
            selected.update(case_types)
            if reduction_type is not None:
                selected["reduction"] = reduction_type
            outputs = (loss_type, *extra_outputs)
            result = outputs[0] if len(outputs) == 1 else f"tuple[{', '.join(outputs)}]"
            lines += _signature(name, parameters, selected, result, overloaded=True)
    # Last, any other call (a reduction or flag not known until run time).
    catch_all = {flag: "bool" for flag in flags}
    if "reduction" in names:
        catch_all["reduction"] = "str"
    lines += _signature(name, parameters, catch_all, "Any", overloaded=True)
    return lines


def module_stub(source_path, module):
    """The text of the stub of one module (its path below fastce/), from its source."""
    with open(source_path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), source_path)
    public = next(ast.literal_eval(node.value) for node in tree.body
                  if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", None) == "__all__")
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    stub = _dask_function_stub if module == "dask" else _function_stub
    body = []
    for name in public:
        body += [""] + stub(functions[name])
    text = "\n".join(body)
    dotted = "fastce." + module.replace("/__init__", "").replace("/", ".")
    header = HEADER.format(module=dotted) + (DASK_HEADER if module == "dask" else "")
    aliases = [f"{alias} = {value}" for alias, value in ALIASES.items() if alias in text]
    names = "".join(f'    "{name}",\n' for name in public)
    return (header + "\n" + "\n".join(aliases)
            + f"\n\n__all__ = [\n{names}]\n{text}\n")


def write_stubs(package_dir, out_package_dir):
    """Write out_package_dir/<module>.pyi for each of MODULES, read from package_dir."""
    for module in MODULES:
        text = module_stub(os.path.join(package_dir, module + ".py"), module)
        target = os.path.join(out_package_dir, module + ".pyi")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        old = None
        if os.path.exists(target):
            with open(target, encoding="utf-8") as handle:
                old = handle.read()
        if old != text:  # leave an unchanged stub's time stamp alone
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)


if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    write_stubs(os.path.join(root, "fastce"), os.path.join(sys.argv[1], "fastce"))
