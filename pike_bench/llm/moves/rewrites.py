"""Method rewrites the offline proposer finds in a task's source (at proposal time).

A rewrite is a subclass of one of the task's classes whose methods are the originals
with one pattern replaced; the candidate switches the built instances to it, and
``_PikeChecked`` (:mod:`pike_bench.llm.moves.runtime.frontier`) keeps the switch only if the
first call's output agrees with the original's. The task's own source is not edited.

- attention: ``scores = q @ k^T [/ c]``, optional ``scores.masked_fill(m, -inf)`` or
  ``scores + bias`` (also under an ``if``), ``probs = softmax(scores, -1)``,
  ``out = probs @ v`` becomes one ``scaled_dot_product_attention`` (a fused kernel that
  never materializes the scores, with a one-query-token path for decode);
- linear recurrence: ``for t in range(n): h = a[.., t] * h + x[.., t]; hs.append(h)``
  then ``torch.stack(hs, dim)`` becomes ``_pike_linear_scan`` (chunked, batched matmuls).
"""

from __future__ import annotations

import ast
import copy
from typing import Callable

Rewriter = Callable[[list[ast.stmt]], "list[ast.stmt] | None"]


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _assign(stmt: ast.stmt) -> tuple[str, ast.expr] | None:
    """(target, value) of `name = value`."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    return None


def _is_call(node: ast.AST, name: str) -> bool:
    func = getattr(node, "func", None)
    return isinstance(node, ast.Call) and (
        (isinstance(func, ast.Attribute) and func.attr == name) or (isinstance(func, ast.Name) and func.id == name)
    )


def _product(node: ast.expr) -> tuple[ast.expr, ast.expr] | None:
    """(a, b) of `a @ b` or `torch.matmul(a, b)`."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        return node.left, node.right
    if _is_call(node, "matmul") and len(node.args) == 2 and not node.keywords:
        return node.args[0], node.args[1]
    return None


_LAST_TWO = ({-2, -1}, {2, 3})


def _untransposed(node: ast.expr) -> ast.expr | None:
    """k of `k.transpose(-2, -1)` (or (2, 3), or k.mT)."""
    if isinstance(node, ast.Attribute) and node.attr == "mT":
        return node.value
    if _is_call(node, "transpose") and isinstance(node.func, ast.Attribute) and len(node.args) == 2:
        try:
            dims = {ast.literal_eval(a) for a in node.args}
        except ValueError:
            return None
        if dims in _LAST_TWO:
            return node.func.value
    return None


def _parse(code: str) -> ast.stmt:
    return ast.parse(code).body[0]


# --- attention ---


def _scores(stmt: ast.stmt) -> tuple[str, ast.expr, ast.expr, ast.expr] | None:
    """(name, q, k, scale) of `name = q @ k^T`, `/ c` or `* c`."""
    assigned = _assign(stmt)
    if assigned is None:
        return None
    name, value = assigned
    scale: ast.expr = ast.Constant(1.0)
    if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Div, ast.Mult)) and _product(value.left):
        scale = value.right if isinstance(value.op, ast.Mult) else ast.BinOp(ast.Constant(1.0), ast.Div(), value.right)
        value = value.left
    product = _product(value)
    if product is None:
        return None
    k = _untransposed(product[1])
    return (name, product[0], k, scale) if k is not None else None


def _mask(stmt: ast.stmt, scores: str) -> ast.stmt | None:
    """The mask bookkeeping that replaces `scores = scores.masked_fill(m, -inf)` or
    `scores = scores + bias` (`scores += bias`); None for any other statement."""
    if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == scores \
            and isinstance(stmt.op, ast.Add):
        return _parse(f"_pike_bias = _pike_add(_pike_bias, {ast.unparse(stmt.value)})")
    assigned = _assign(stmt)
    if assigned is None or assigned[0] != scores:
        return None
    value = assigned[1]
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add) and isinstance(value.left, ast.Name) \
            and value.left.id == scores and scores not in _names(value.right):
        return _parse(f"_pike_bias = _pike_add(_pike_bias, {ast.unparse(value.right)})")
    if _is_call(value, "masked_fill") and isinstance(value.func.value, ast.Name) and value.func.value.id == scores \
            and len(value.args) == 2 and "inf" in ast.unparse(value.args[1]) and ast.unparse(value.args[1]).startswith(("-", "float('-")):
        return _parse(f"_pike_keep = _pike_and(_pike_keep, ~({ast.unparse(value.args[0])}))")
    return None


_CASTS = {"type_as", "to", "float", "half", "bfloat16", "double"}


def _softmax_of(value: ast.expr, scores: str) -> bool:
    """Whether value is softmax(scores, dim=-1), maybe of scores.float(), maybe cast after."""
    while _is_call(value, next(iter(_CASTS & {getattr(getattr(value, "func", None), "attr", "")}), "")):
        value = value.func.value
    if not _is_call(value, "softmax"):
        return False
    args = list(value.args)
    if args and scores in _names(args[0]):  # F.softmax(scores, ...)
        source = args.pop(0)
    elif isinstance(value.func, ast.Attribute):  # scores.softmax(...)
        source = value.func.value
    else:
        return False
    while _is_call(source, next(iter(_CASTS & {getattr(getattr(source, "func", None), "attr", "")}), "")):
        source = source.func.value
    dims = args[:1] + [k.value for k in value.keywords if k.arg == "dim"]
    return isinstance(source, ast.Name) and source.id == scores and len(dims) == 1 and ast.unparse(dims[0]) == "-1"


def rewrite_attention(body: list[ast.stmt]) -> list[ast.stmt] | None:
    for i, stmt in enumerate(body):
        found = _scores(stmt)
        if found is None:
            continue
        scores, q, k, scale = found
        out = _attention_from(body, i, scores, q, k, scale)
        if out is not None:
            return out
    return None


def _attention_from(body, i, scores, q, k, scale):
    middle: list[ast.stmt] = []
    for j in range(i + 1, len(body)):
        assigned = _assign(body[j])
        if assigned and _softmax_of(assigned[1], scores):
            return _attention_tail(body, i, j, middle, assigned[0], q, k, scale, scores)
        stmt = _between(body[j], scores)
        if stmt is None:
            return None
        middle.append(stmt)
    return None


def _between(stmt: ast.stmt, scores: str) -> ast.stmt | None:
    """A statement between the scores and the softmax: mask bookkeeping in place of a
    mask, an `if` of such statements, or one that does not touch the scores."""
    mask = _mask(stmt, scores)
    if mask is not None:
        return mask
    if scores not in _names(stmt):
        return stmt
    if isinstance(stmt, ast.If) and not stmt.orelse and scores not in _names(stmt.test):
        inner = [_between(s, scores) for s in stmt.body]
        return None if None in inner else ast.If(stmt.test, inner, [])
    return None


def _attention_tail(body, i, j, middle, probs, q, k, scale, scores):
    if j + 1 >= len(body):
        return None
    assigned = _assign(body[j + 1])
    product = _product(assigned[1]) if assigned else None
    if product is None or not (isinstance(product[0], ast.Name) and product[0].id == probs):
        return None
    rest = body[j + 2:]
    if any({probs, scores} & _names(s) for s in rest):
        return None
    head = [
        _parse(f"_pike_q, _pike_k, _pike_scale = {ast.unparse(q)}, {ast.unparse(k)}, {ast.unparse(scale)}"),
        _parse("_pike_keep = _pike_bias = None"),
    ]
    sdpa = _parse(
        f"{assigned[0]} = _pike_torch.nn.functional.scaled_dot_product_attention(_pike_q, _pike_k, "
        f"{ast.unparse(product[1])}, attn_mask=_pike_attn_mask(_pike_keep, _pike_bias), scale=_pike_scale)"
    )
    return body[:i] + head + middle + [sdpa] + rest


# --- linear recurrences ---


def _step_axis(node: ast.expr, t: str) -> tuple[ast.expr, int] | None:
    """(a, axis) of `a[:, :, t]`: t at one position, full slices elsewhere."""
    if not isinstance(node, ast.Subscript):
        return None
    items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    axes = [n for n, item in enumerate(items) if isinstance(item, ast.Name) and item.id == t]
    full = all(isinstance(item, ast.Slice) and not (item.lower or item.upper or item.step)
               for n, item in enumerate(items) if n not in axes)
    if len(axes) != 1 or not full or t in _names(node.value):
        return None
    return node.value, axes[0]


def _recurrence(stmt: ast.stmt, t: str) -> tuple[str, ast.expr, ast.expr, int] | None:
    """(h, a, x, axis) of `h = a[.., t] * h + x[.., t]` (either order of either operation)."""
    assigned = _assign(stmt)
    if assigned is None or not (isinstance(assigned[1], ast.BinOp) and isinstance(assigned[1].op, ast.Add)):
        return None
    h, value = assigned
    for decayed, added in ((value.left, value.right), (value.right, value.left)):
        if not (isinstance(decayed, ast.BinOp) and isinstance(decayed.op, ast.Mult)):
            continue
        for factor, state in ((decayed.left, decayed.right), (decayed.right, decayed.left)):
            a, x = _step_axis(factor, t), _step_axis(added, t)
            if isinstance(state, ast.Name) and state.id == h and a and x and a[1] == x[1]:
                return h, a[0], x[0], a[1]
    return None


def rewrite_scan(body: list[ast.stmt]) -> list[ast.stmt] | None:
    for i, stmt in enumerate(body[:-1]):
        if not (isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name) and not stmt.orelse
                and _is_call(stmt.iter, "range") and len(stmt.iter.args) == 1 and len(stmt.body) == 2):
            continue
        t, steps = stmt.target.id, ast.unparse(stmt.iter.args[0])
        found = _recurrence(stmt.body[0], t)
        append = stmt.body[1]
        if found is None or not (isinstance(append, ast.Expr) and _is_call(append.value, "append")):
            continue
        h, a, x, axis = found
        states = append.value.func.value
        if not (isinstance(states, ast.Name) and [ast.unparse(n) for n in append.value.args] == [h]):
            continue
        stacked = _assign(body[i + 1])
        if not (stacked and _is_call(stacked[1], "stack") and ast.unparse(stacked[1].args[0]) == states.id
                and _stack_dim(stacked[1]) == axis):
            continue
        a_all, x_all = (f"{ast.unparse(v)}.narrow({axis}, 0, {steps})" for v in (a, x))
        scan = [
            _parse(f"{stacked[0]} = _pike_linear_scan({a_all}, {x_all}, {h}, dim={axis})"),
            _parse(f"{h} = {stacked[0]}.select({axis}, -1) if {steps} > 0 else {h}"),
        ]
        return body[:i] + scan + body[i + 2:]
    return None


def _stack_dim(call: ast.Call) -> int | None:
    dims = call.args[1:] + [k.value for k in call.keywords if k.arg == "dim"]
    try:
        return ast.literal_eval(dims[0]) if len(dims) == 1 else 0
    except ValueError:
        return None


# --- classes ---


def _rewrite_body(body: list[ast.stmt], rewrite: Rewriter) -> list[ast.stmt] | None:
    """The statement list with the pattern replaced at the first place it is found,
    searching nested blocks (if/for/with) too."""
    done = rewrite(body)
    if done is not None:
        return done
    for n, stmt in enumerate(body):
        for field in ("body", "orelse"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                new = _rewrite_body(inner, rewrite)
                if new is not None:
                    stmt = copy.copy(stmt)
                    setattr(stmt, field, new)
                    return body[:n] + [stmt] + body[n + 1:]
    return None


def rewrite_classes(reference: str, rewrite: Rewriter, prefix: str) -> dict[str, str]:
    """{class name: source of its rewritten subclass} for the task's top-level classes in
    which a method has the pattern (every occurrence in it is replaced). Methods that call
    super() are left alone: in a subclass it would name another class."""
    try:
        tree = ast.parse(reference)
    except SyntaxError:
        return {}
    found = {}
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        methods = []
        for method in cls.body:
            if not isinstance(method, ast.FunctionDef) or "super" in _names(method):
                continue
            body, changed = method.body, False
            while (new := _rewrite_body(body, rewrite)) is not None:
                body, changed = new, True
            if changed:
                methods.append(ast.FunctionDef(method.name, method.args, body, method.decorator_list, method.returns,
                                               method.type_comment, type_params=[]))
        if methods:
            subclass = ast.ClassDef(f"{prefix}{cls.name}", [ast.Name(cls.name)], [], methods, [], type_params=[])
            found[cls.name] = ast.unparse(ast.fix_missing_locations(subclass))
    return found
