"""GNU Octave update code: the shared plan printed with ``'``, ``*``, ``.*``, ``./`` and implicit expansion.

:func:`module_source` writes one script file with local functions: running it
(``source("net.m")``) defines ``forward(params, X)``, ``cost(params, X, Y)``,
``gradients(params, X, Y)`` (a struct like ``params``) and
``step(params, X, Y, lr)`` (the updated struct); ``params`` is a struct with
one field per parameter.  A weight-decay symbol is an extra argument after
``Y`` (and after ``lr`` for ``step``), and a dropout mask an optional argument
after those (left out or ``[]``: evaluation mode).  An embedding's ``X`` is
one-hot samples or word ids counting from 1.  A bias vector is added by implicit
expansion.  Each function checks the fields and the shapes and raises an error
naming the parameter.

>>> from symbackprop import Dense, Network, derive
>>> source = module_source(derive(Network(2, [Dense(3, "tanh"), Dense(1)], batch="m")))
>>> print(source[source.index("function G = gradients"):source.index("function params = step")].strip())
function G = gradients(params, X, Y)
  % ∂C/∂W⁽¹⁾, ∂C/∂b⁽¹⁾, … at params: a struct shaped like params.
  m = size(X, 2);
  sbp_check_shape("X", X, 2, m);
  W1 = sbp_parameter(params, "W1", 3, 2);
  b1 = sbp_parameter(params, "b1", 3, 1);
  W2 = sbp_parameter(params, "W2", 1, 3);
  b2 = sbp_parameter(params, "b2", 1, 1);
  sbp_check_shape("Y", Y, 1, m);
  z1 = W1 * X + b1;
  a1 = tanh(z1);
  z2 = W2 * a1 + b2;
  a2 = z2;
  delta2 = 2 * (a2 - Y);
  delta1 = (W2' * delta2) .* (1 - a1 .^ 2);
  G.W1 = delta1 * X';
  G.b1 = sum(delta1, 2);
  G.W2 = delta2 * a1';
  G.b2 = sum(delta2, 2);
end
"""

from __future__ import annotations

import sympy
from sympy import MatAdd, Piecewise

from ... import naming
from ...derive import Derivation
from ...errors import SpecError
from ...printing.numpy import scaled
from ..codegen import _LR, _Generator, _Statement
from ._python import TargetPrinter

__all__ = ["OctaveCodePrinter", "module_source"]

_NAMES = {name: name for name in ("exp", "log", "log1p", "sin", "cos", "tan", "tanh", "abs", "sqrt", "sign",
                                  "trace", "kron", "sinh", "cosh")}
_NAMES.update({"linalg.det": "det", "linalg.inv": "inv", "arcsin": "asin", "arccos": "acos", "arctan": "atan"})
_ATOM, _POWER, _PRODUCT, _SUM = 100, 60, 50, 40


class OctaveCodePrinter(TargetPrinter):
    """Octave code: ``A * B`` for matrix products, ``.*``, ``./`` and ``.^`` entry by entry, ``A'`` transposes.

    >>> from sympy import MatrixSymbol, HadamardProduct
    >>> A, B = MatrixSymbol("A", 2, 2), MatrixSymbol("B", 2, 2)
    >>> OctaveCodePrinter().doprint(HadamardProduct(A.T * B, A, evaluate=False))
    "(A' * B) .* A"
    """

    printmethod = "_symbackprop_octave"
    engine = "Octave"
    names_map = _NAMES

    def full(self, expr) -> str:
        if self.is_full(expr):
            return self._print(expr)
        rows, cols = (self._print(d) for d in expr.shape)
        return f"bsxfun(@plus, zeros({rows}, {cols}), {self._print(expr)})"  # implicit expansion, as a call

    def _print_Transpose(self, expr) -> str:
        return f"{self._operand(expr.arg)}'"

    @staticmethod
    def product_operator(left) -> str:
        return "*"

    def _sum_along(self, factors, axis) -> str:
        text = self._print_product_of(factors) if len(factors) > 1 else self.full(factors[0])
        return f"sum(sum({text}))" if axis is None else f"sum({text}, {axis + 1})"

    def _print_SumEntries(self, expr) -> str:
        return f"sum(sum({self.full(expr.arg)}))"

    def _print_HadamardProduct(self, expr) -> str:
        return " .* ".join(self._operand(f) for f in expr.args)

    def _print_HadamardPower(self, expr) -> str:
        base, exponent = expr.args
        if exponent == -1:
            return f"1 ./ {self._operand(base)}"
        return f"{self._operand(base)} .^ {self._operand(exponent)}"

    def _print_Pow(self, expr, rational=False) -> str:
        if expr.exp == sympy.S.Half:
            return f"sqrt({self._print(expr.base)})"
        if expr.exp == -1:
            return f"1 ./ {self._operand(expr.base)}"
        return f"{self._operand(expr.base)} .^ {self._operand(expr.exp)}"

    def _print_Mul(self, expr) -> str:
        if expr.could_extract_minus_sign():
            negated = -expr
            text = self._print(negated)
            return f"-{text}" if self._precedence(negated) >= _POWER else f"-({text})"  # -a .^ 2 is -(a .^ 2)
        numerator, denominator = sympy.fraction(expr, exact=True)
        factors = sympy.Mul.make_args(numerator)
        text = " .* ".join(self._operand(f) for f in factors)
        if denominator != 1:
            text += f" ./ {self._operand(denominator)}"
        return text

    def _print_Rational(self, expr) -> str:
        return f"{expr.p} / {expr.q}" if expr.q != 1 else str(expr.p)

    def _print_Identity(self, expr) -> str:
        return "1" if expr.shape == (1, 1) else f"eye({self._print(expr.shape[0])})"

    def _print_Inverse(self, expr) -> str:
        return f"inv({self.full(expr.arg)})"

    def _print_MatPow(self, expr) -> str:
        base, exponent = expr.args
        return f"mpower({self.full(base)}, {self._print(exponent)})"

    def _print_Softmax(self, expr) -> str:
        name = "causal_softmax" if expr.causal else "softmax"
        self.helpers[name] = None
        return f"{name}({self._print(expr.arg)}, {expr.axis + 1})"

    def _print_Normalize(self, expr) -> str:
        centred = f"{self._operand(expr.arg, self.full(expr.arg))} - {self._operand(expr.mean)}"
        return f"({centred}) ./ {self._operand(expr.deviation)}"

    def _print_Deviation(self, expr) -> str:
        self.helpers["deviation"] = None
        return (f"deviation({self.full(expr.arg)}, {self._print(expr.mean)}, {expr.axis + 1}, "
                f"{float(expr.epsilon)!r})")

    def _print_Constant(self, expr) -> str:
        value = expr.value
        return repr(float(value)) if value.is_number else self._print(value)

    def _embed(self, helper: str, rest, X, axis: int, vocab=None) -> str:
        """``embed(E, X, dim)``: ``dim`` is Octave's (1: X's columns are the samples, 2: its rows)."""
        return super()._embed(helper, rest, X, axis + 1, vocab)

    def _print_LogSoftmax(self, expr) -> str:
        self.helpers["log_softmax"] = None
        return f"log_softmax({self._print(expr.arg)}, {expr.axis + 1})"

    def _print_Piecewise(self, expr) -> str:
        return self.refuse("a piecewise function")

    def _print_KroneckerAdjoint(self, expr) -> str:
        return self.refuse("a Kronecker adjoint")

    _print_MatrixElement = _print_UnitMatrix = _print_KroneckerDelta = _print_DiagMatrix = \
        _print_DiagonalOf = _print_einsum = lambda self, expr: self.refuse(type(expr).__name__)


HELPERS = {
    "identity": "function y = identity(x)\n  y = x;\nend\n",
    "identity_grad": "function y = identity_grad(x)\n  y = ones(size(x));\nend\n",
    "sigmoid": "function y = sigmoid(x)\n  % e^min(x,0) / (e^min(x,0) + e^min(-x,0)): no exponent is positive\n"
               "  p = exp(min(x, 0));\n  y = p ./ (p + exp(min(-x, 0)));\nend\n",
    "sigmoid_grad": "function y = sigmoid_grad(x)\n  e = exp(-abs(x));\n  y = e ./ ((1 + e) .* (1 + e));\nend\n",
    "tanh": "function y = tanh(x)\n  y = builtin(\"tanh\", x);\nend\n",
    "tanh_grad": "function y = tanh_grad(x)\n  t = builtin(\"tanh\", x);\n  y = 1 - t .* t;\nend\n",
    "relu": "function y = relu(x)\n  y = max(x, 0);\nend\n",
    "relu_grad": "function y = relu_grad(x)\n  y = double(x > 0);\nend\n",
    "leaky_relu": "function y = leaky_relu(x)\n  y = max(x, 0) + 0.01 * min(x, 0);\nend\n",
    "leaky_relu_grad": "function y = leaky_relu_grad(x)\n  y = 0.01 + 0.99 * (x > 0);\nend\n",
    "softplus": "function y = softplus(x)\n  % log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})\n"
                "  y = max(x, 0) + log1p(exp(-abs(x)));\nend\n",
    "softplus_grad": "function y = softplus_grad(x)\n  y = sigmoid(x);\nend\n",
    "softmax": "function y = softmax(x, dim)\n  e = exp(x - max(x, [], dim));\n  y = e ./ sum(e, dim);\nend\n",
    "log_softmax": "function y = log_softmax(x, dim)\n  shifted = x - max(x, [], dim);\n"
                   "  y = shifted - log(sum(exp(shifted), dim));\nend\n",
    "log_grad": "function y = log_grad(x)\n  y = 1 ./ x;\nend\n",
    "sqrt_grad": "function y = sqrt_grad(x)\n  y = 0.5 ./ sqrt(x);\nend\n",
    "exp_grad": "function y = exp_grad(x)\n  y = exp(x);\nend\n",
    "causal_softmax": """
function y = causal_softmax(x, dim)
  % a token attends to itself and the tokens before it: the others' logits are -Inf, so their
  % weights are exactly 0; the diagonal is never masked, so every maximum is finite
  later = triu(true(size(x)), 1);
  if dim == 1
    later = later';
  end
  x(later) = -Inf;
  e = exp(x - max(x, [], dim));
  y = e ./ sum(e, dim);
end
""",
    "deviation": """
function y = deviation(x, mu, dim, epsilon)
  % the biased deviation sqrt(mean((x - mu).^2) + epsilon)
  d = x - mu;
  y = sqrt(mean(d .* d, dim) + epsilon);
end
""",
    "embed": """
function y = embed(E, X, dim)
  % one-hot samples multiply; word ids (1 to the vocabulary, one per sample) index E's columns (dim 2: rows)
  if dim == 1
    if size(X, 1) == size(E, 2)
      y = E * X;
    else
      y = E(:, X);
    end
  elseif size(X, 2) == size(E, 1)
    y = X * E;
  else
    y = E(X, :);
  end
end
""",
    "embed_grad": """
function y = embed_grad(G, X, dim, vocab)
  % dC/dE = G X' (dim 2: X' G); for word ids a sparse one-hot product, repeated ids accumulating
  if size(X, dim) == vocab
    if dim == 1
      y = G * X';
    else
      y = X' * G;
    end
  elseif dim == 1
    y = full(G * sparse(X(:), (1:numel(X))', 1, vocab, numel(X))');
  else
    y = full(sparse(X(:), (1:numel(X))', 1, vocab, numel(X)) * G);
  end
end
""",
}

SUPPORT = '''
function A = sbp_parameter(params, name, rows, cols)
  % params.(name), checked present and of shape rows × cols
  if ~isstruct(params)
    error("symbackprop:arguments", "params must be a struct with the fields %s", sbp_fields());
  end
  if ~isfield(params, name)
    error("symbackprop:arguments", "params: missing %s; expected %s", name, sbp_fields());
  end
  A = params.(name);
  sbp_check_shape(name, A, rows, cols);
end

function sbp_check_shape(name, A, rows, cols)
  if ~isnumeric(A) || ndims(A) ~= 2 || size(A, 1) ~= rows || size(A, 2) ~= cols
    error("symbackprop:shape", "%s: expected shape (%d, %d), given (%s)", name, rows, cols, ...
          strjoin(arrayfun(@num2str, size(A), "UniformOutput", false), ", "));
  end
end

function M = sbp_mask(name, M, rows, cols, rate)
  % a dropout mask of 0s and 1s; [] (or left out) is evaluation mode: the number 1 - p, so that
  % the layer's M .* x ./ (1 - p) passes x through
  if isempty(M)
    M = 1 - rate;
    return;
  end
  if ~(isnumeric(M) || islogical(M)) || ndims(M) ~= 2 || size(M, 1) ~= rows || size(M, 2) ~= cols
    error("symbackprop:shape", "%s: expected a dropout mask of shape (%d, %d), given (%s)", name, rows, ...
          cols, strjoin(arrayfun(@num2str, size(M), "UniformOutput", false), ", "));
  end
  if any(M(:) ~= 0 & M(:) ~= 1)
    error("symbackprop:arguments", "%s: a dropout mask holds only 0 (dropped) and 1 (kept)", name);
  end
  M = double(M);
end

function sbp_check_words(name, X, vocab, samples, dim)
  % an embedding's input: one-hot samples along dim (1: columns, 2: rows), or word ids from 1 to
  % vocab, one per sample (a 1 × samples row for dim 1, a samples × 1 column for dim 2)
  if ~isnumeric(X) || ndims(X) ~= 2 || size(X, 3 - dim) ~= samples || ...
     (size(X, dim) ~= vocab && size(X, dim) ~= 1)
    shape = {sprintf("(%d, %d)", vocab, samples), sprintf("(%d, %d)", samples, vocab)};
    ids = {sprintf("(1, %d)", samples), sprintf("(%d, 1)", samples)};
    error("symbackprop:shape", "%s: expected one-hot samples of shape %s or word ids of shape %s, given (%s)", ...
          name, shape{dim}, ids{dim}, strjoin(arrayfun(@num2str, size(X), "UniformOutput", false), ", "));
  end
  if size(X, dim) == vocab
    if any(X(:) ~= 0 & X(:) ~= 1) || any(sum(X, dim) ~= 1)
      sample = {"column", "row"};
      error("symbackprop:arguments", ["%s: the embedding takes one-hot samples (each %s a single 1, zeros " ...
            "elsewhere) or word ids from 1 to %d"], name, sample{dim}, vocab);
    end
  elseif any(X(:) ~= round(X(:))) || any(X(:) < 1) || any(X(:) > vocab)
    error("symbackprop:arguments", ["%s: word ids must be whole numbers from 1 to %d (the vocabulary has %d " ...
          "words; Octave counts from 1); given ids from %g to %g"], name, vocab, vocab, min(X(:)), max(X(:)));
  end
end

function lr = sbp_learning_rate(lr)
  if ~(isnumeric(lr) && isscalar(lr) && isreal(lr) && lr > 0 && isfinite(lr))
    error("symbackprop:arguments", "lr: the learning rate must be a positive finite number");
  end
end
'''


#: names the Octave script defines or calls, beside its helpers and quantities
_RESERVED = {"forward", "cost", "gradients", "step", "params", "X", "Y", "lr", "G", "C", "sbp_parameter",
             "sbp_check_shape", "sbp_learning_rate", "sbp_fields", "sbp_mask", "sbp_check_words", "nargin", "size", "sum", "zeros", "ones", "max", "min",
             "bsxfun", "eye", "builtin", "error", "struct", "isfield", "end", "function", "if", "for", "while",
             *_NAMES.values()}


class OctaveGenerator(_Generator):
    printer_class = OctaveCodePrinter

    def _fixed(self, parameter) -> _Statement:
        rows, cols = (self.printer.doprint(d) for d in parameter.shape)
        value = parameter.value.tolist() if hasattr(parameter.value, "tolist") else parameter.value
        literal = ("[" + "; ".join(", ".join(repr(float(v)) for v in row) for row in value) + "]"
                   if isinstance(value, list) else repr(float(value)))
        reads = tuple(str(d) for d in parameter.shape if d.is_Symbol)
        return _Statement(parameter.name, f"{parameter.name} = {literal} + zeros({rows}, {cols});", reads)

    def print(self, expr, full: bool = True):
        code, names, symbols = super().print(expr, full)
        if self.printer.unsupported:
            raise SpecError(f"the Octave target cannot print {', '.join(self.printer.unsupported)}; "
                            f"generate NumPy code for this derivation instead")
        return code, names, symbols

    def _statement(self, target: str, expr) -> _Statement:
        code, names, symbols = self.print(expr)
        return _Statement(target, f"{target} = {code};", names + symbols)

    def _octave_sizes(self) -> list[tuple[str, str, int]]:
        """Each symbolic size → (array, axis) it is read from: X first, then the parameters, then Y.
        Word ids have no vocabulary axis: an embedding's vocabulary is read from E."""
        sources: dict[str, tuple[str, int]] = {}
        arrays = [naming.INPUT, *self.params, naming.TARGET]
        for name in arrays:
            for axis, size in enumerate(self.d.symbols[name].shape):
                if size.is_Symbol and not (name == naming.INPUT and axis == self.one_hot):
                    sources.setdefault(self.printer.doprint(size), (name, axis))
        return sources

    def function(self, name: str, outputs: str, arguments: str, doc: str, result: list[_Statement],
                 data: tuple[str, ...]) -> list[str]:
        reads = [r for s in result for r in s.reads]
        body = self.needed(reads) + result
        everything = [r for s in body for r in s.reads]
        hyper = [r for r in dict.fromkeys(everything)
                 if r in self.scalars and r not in self._octave_sizes() and r != "lr"]
        # another given matrix of a written model is a required argument; a dropout mask may be left out
        given = [i for i in self.data_inputs if i.name in everything and i.kind != "mask"]
        masks = [i for i in self.data_inputs if i.name in everything and i.kind == "mask"]
        signature = arguments + "".join(f", {h}" for h in hyper) + "".join(f", {g.name}" for g in given) \
            + "".join(f", {m.name}" for m in masks)
        lines = [f"function {outputs} = {name}({signature})", f"  % {doc}"]
        if masks:
            lines.append(f"  % {', '.join(m.name for m in masks)}: the dropout mask{'s' if len(masks) > 1 else ''} "
                         f"(0s and 1s); left out or [], evaluation mode")
        count = len(signature.split(","))
        for index, mask in enumerate(masks):
            lines.append(f"  if nargin < {count - len(masks) + index + 1}, {mask.name} = []; end")
        if "lr" in arguments:
            lines.append("  lr = sbp_learning_rate(lr);")
        sources = self._octave_sizes()
        for array in (naming.INPUT, *self.params, *data[1:]):
            for size, (source, axis) in sources.items():
                if source == array:
                    read = f"size({array}, {axis + 1})" if array in data else f"size(params.{array}, {axis + 1})"
                    lines.append(f"  {size} = {read};")
            rows, cols = (self.printer.doprint(d) for d in self.d.symbols[array].shape)
            if array == naming.INPUT and self.one_hot is not None:
                continue  # checked once E has given the vocabulary
            if array in data:
                lines.append(f'  sbp_check_shape("{array}", {array}, {rows}, {cols});')
            else:
                lines.append(f'  {array} = sbp_parameter(params, "{array}", {rows}, {cols});')
            if self.one_hot is not None and array == self.params[-1]:
                shape = [self.printer.doprint(d) for d in self.d.symbols[naming.INPUT].shape]
                lines.append(f'  sbp_check_words("X", X, {shape[self.one_hot]}, {shape[1 - self.one_hot]}, '
                             f'{self.one_hot + 1});')
        for size in self.normalised_counts:
            if str(size) in sources and str(size) in everything:
                lines += [f"  if {size} < 2",
                          f'    error("symbackprop:shape", "a normalisation over {size} = %d entries makes every '
                          f'x̂ 0; give at least 2 (a batch of 1 cannot be batch-normalised)", {size});',
                          "  end"]
        for item in given:
            rows, cols = (self.printer.doprint(d) for d in item.shape)
            lines.append(f'  sbp_check_shape("{item.name}", {item.name}, {rows}, {cols});')
        for mask in masks:
            rows, cols = (self.printer.doprint(d) for d in mask.shape)
            lines.append(f'  {mask.name} = sbp_mask("{mask.name}", {mask.name}, {rows}, {cols}, {mask.rate!r});')
        for statement in body:
            lines += ["  " + line for line in statement.code.splitlines()]
        lines.append("end")
        return lines

    def all_functions(self) -> list[list[str]]:
        output = self.plan.output
        cost, names, symbols = self.print(self.plan.cost)
        gradients, reads = [], []
        for name, gradient in self.plan.gradients.items():
            code, n, s = self.print(gradient)
            gradients.append(f"G.{name} = {code};")
            reads += [*n, *s]
        updates, update_reads = [], []
        for name, gradient in self.plan.gradients.items():
            code, n, s = self.print(MatAdd(self.d.symbols[name], scaled(-_LR, gradient)))
            updates.append(f"params.{name} = {code};")
            update_reads += [*n, *s]
        return [
            self.function("forward", output, "params, X", "The network's output a⁽ᴸ⁾ for the inputs X.",
                          [_Statement(None, f"% {output} is the output", (output,))], ("X",)),
            self.function("cost", "C", "params, X, Y", "The cost C at params for inputs X and targets Y.",
                          [_Statement(None, f"C = {cost};", names + symbols)], ("X", "Y")),
            self.function("gradients", "G", "params, X, Y",
                          "∂C/∂W⁽¹⁾, ∂C/∂b⁽¹⁾, … at params: a struct shaped like params.",
                          [_Statement(None, "\n".join(gradients), tuple(reads))], ("X", "Y")),
            self.function("step", "params", "params, X, Y, lr",
                          "One step of gradient descent: params with each field minus lr times its gradient.",
                          [_Statement(None, "\n".join(updates), tuple(update_reads))], ("X", "Y")),
        ]


def _custom(printer: OctaveCodePrinter, name: str, variable, expression) -> str:
    if expression.has(Piecewise):
        raise SpecError(f"the activation {name.split('_grad')[0]!r} cannot be written for Octave; "
                        f"generate NumPy code for it instead")
    argument = printer.doprint(variable)
    code = printer.doprint(expression)
    if not expression.has(variable):
        code = f"{code} * ones(size({argument}))"
    return f"function y = {name}({argument})\n  % {expression}, entry by entry.\n  y = {code};\nend"


def module_source(derivation: Derivation) -> str:
    """The text of an Octave script for ``derivation`` (byte-identical for the same input)."""
    from ... import __version__
    from ._python import helper_sources

    g = OctaveGenerator(derivation)
    functions = g.all_functions()
    custom = [_custom(g.printer, name, variable, expression)
              for name, (variable, expression) in sorted(g.printer.custom.items())]
    if g.printer.unsupported:
        raise SpecError(f"the Octave target cannot print {', '.join(g.printer.unsupported)}; "
                        f"generate NumPy code for this derivation instead")
    helpers = helper_sources(HELPERS, g.printer.helpers, "Octave")
    used = _RESERVED | set(HELPERS) | {q.target for q in g.plan.quantities} | set(g.params)
    for name in g.printer.custom:
        if name in used:
            raise SpecError(f"the custom activation name {name!r} is a name the generated Octave code uses; "
                            f"give the activation another name")
    for name in (g.printer.doprint(s) for s in (*derivation.program.size_symbols, *derivation.program.scalars)):
        if name in used:
            raise SpecError(f"the symbol {name!r} is a name the generated Octave code uses; rename it")
    model = derivation.program
    fields = ", ".join(g.params)
    lines = ["1;  % a script file: source() it to define the functions below", "%",
             f"% Backpropagation for {model.title}.", "%",
             f"% Generated by symbackprop {__version__} from its derivation, for GNU Octave.",
             f"% params is a struct with the fields {fields} (2-d arrays;",
             "% samples are " + ("columns: X is features × samples)." if model.layout == "columns"
                                 else "rows: X is samples × features)."),
             "%"]
    lines += [f"%   {line}" if line else "%" for line in derivation.text().rstrip("\n").splitlines()]
    lines.append("")
    blocks = ["\n".join(f) for f in functions] + custom + helpers
    blocks.append(SUPPORT.strip("\n"))
    blocks.append(f'function text = sbp_fields()\n  text = "{fields}";\nend')
    return "\n".join(lines) + "\n" + "\n\n".join(blocks) + "\n"
