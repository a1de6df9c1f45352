"""Search spaces: which config fields a search varies, in KerasTuner's vocabulary.

A space file (`tune --space FILE`, TOML or JSON) has one table per field; its key is a config
field (`learning_rate`, `dropout`, ...) or a stage's field, `stages.N.FIELD` (N from 1, as in
the plan):

```toml
[learning_rate]                 # hp.Float: log sampling between the bounds
type = "float"
min_value = 1e-4
max_value = 1e-2
sampling = "log"

[optimizer]                     # hp.Choice
type = "choice"
values = ["adam", "sgd"]

[weight_decay]                  # conditional: only searched when optimizer is sgd
type = "float"
min_value = 0.0
max_value = 1e-3
parent_name = "optimizer"
parent_values = ["sgd"]

["stages.2.epochs"]             # a stage's field (also [stages.2.epochs] as nested tables)
type = "int"
min_value = 2
max_value = 6
step = 2
```

Types are KerasTuner's: `choice` (`values`, `ordered`), `int` and `float` (`min_value`,
`max_value`, `step`, `sampling` = linear, log or reverse_log), `boolean`, `fixed` (`value`);
`parent_name`/`parent_values` make a field conditional (`hp.conditional_scope`). `min`/`max`
are accepted for `min_value`/`max_value`. The first trial takes each field's `default`, else the
base config's value (`starting_values`), so a search tries its starting point first.

No TensorFlow here: a space is read and checked against the config class (every field known,
every bound and choice a valid value of it) before a search writes anything.
"""

import dataclasses
import itertools
import math

from tf_finetune import config as config_lib
from tf_finetune.errors import UserError

TYPES = ("choice", "int", "float", "boolean", "fixed")
SAMPLINGS = ("linear", "log", "reverse_log")
KEYS = {"type", "values", "ordered", "min_value", "max_value", "step", "sampling", "value", "default",
        "parent_name", "parent_values"}


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched field.

    Attributes:
        name: the config field, or `stages.N.FIELD`.
        type: one of `TYPES`.
        values: `choice`'s values (`fixed`: its one value).
        min_value, max_value, step, sampling: `int` and `float` ranges.
        ordered: `choice`: whether the values are ordered (KerasTuner's default for numbers).
        default: the first trial's value (None: the base config's, `starting_values`).
        parent_name, parent_values: the choice this field depends on, and the values for
            which it is searched (None: always).
    """

    name: str
    type: str
    values: tuple = ()
    min_value: float = None
    max_value: float = None
    step: float = None
    sampling: str = "linear"
    ordered: bool = None
    default: object = None
    parent_name: str = None
    parent_values: tuple = ()

    def candidates(self):
        """The values a grid tries (None for a continuous range)."""
        if self.type in ("choice", "fixed"):
            return list(self.values)
        if self.type == "boolean":
            return [False, True]
        if self.type == "int":
            step = int(self.step or 1)
            return list(range(int(self.min_value), int(self.max_value) + 1, step))
        if self.step:
            n = int(math.floor((self.max_value - self.min_value) / self.step + 1e-9))
            return [self.min_value + i * self.step for i in range(n + 1)]
        return None

    def contains(self, value):
        """Whether `value` is one of the points this field can take (`True` is not the number 1)."""
        if value is None:
            return False
        candidates = self.candidates()
        if candidates is not None:
            return any(_same(v, value) for v in candidates)
        return not isinstance(value, bool) and isinstance(value, (int, float)) and (
            self.min_value <= value <= self.max_value)

    def extremes(self):
        """The values whose validity stands for the whole field: choices, or both bounds."""
        if self.type in ("int", "float"):
            return [self.min_value, self.max_value]
        return self.candidates()

    def declare(self, hp):
        """Declares this field on a KerasTuner `HyperParameters`; returns its value."""
        if self.parent_name:
            with hp.conditional_scope(self.parent_name, list(self.parent_values)):
                return self._declare(hp)
        return self._declare(hp)

    def _declare(self, hp):
        default = {} if self.default is None else {"default": self.default}
        if self.type == "choice":
            return hp.Choice(self.name, list(self.values), ordered=self.ordered, **default)
        if self.type == "int":
            return hp.Int(self.name, int(self.min_value), int(self.max_value), step=int(self.step) if self.step else None,
                          sampling=self.sampling, **default)
        if self.type == "float":
            return hp.Float(self.name, float(self.min_value), float(self.max_value), step=self.step,
                            sampling=self.sampling, **default)
        if self.type == "boolean":
            return hp.Boolean(self.name, **default)
        return hp.Fixed(self.name, self.values[0])

    def to_dict(self):
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, (), "linear") or k == "type"}


def _same(a, b):
    """Equal values of one kind: numbers within rounding (a float grid's steps), bools only to bools."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def read_space(path, config_class):
    """The `Param`s of the space file at `path`, checked against `config_class`'s fields."""
    flag = f"--space {path}"
    data = config_lib.read_table_file(path, "--space", "searched fields")
    params = [_param(flag, name, spec, config_class) for name, spec in _flatten(data)]
    if not params:
        raise UserError(f"{flag} is empty: give at least one field to search, e.g. [learning_rate] with "
                        "type = \"float\", min_value, max_value.")
    names = [p.name for p in params]
    for p in params:
        if p.parent_name and p.parent_name not in names[: names.index(p.name)]:
            raise UserError(f"{flag}: {p.name}'s parent_name {p.parent_name!r} must be a field searched above it.")
    return params


def _flatten(data, prefix=""):
    """`(dotted name, spec)` for each table holding a `type`; nested tables are paths
    (`[stages.2.epochs]` in TOML is the field `stages.2.epochs`)."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "type" not in value and value and all(isinstance(v, dict) for v in value.values()):
            yield from _flatten(value, name + ".")
        else:
            yield name, value


def _param(flag, name, spec, config_class):
    where = f"{flag}: {name}"
    if not isinstance(spec, dict):
        raise UserError(f"{where} must be a table with a type ({', '.join(TYPES)}). Received: {spec!r}")
    unknown = sorted(set(spec) - KEYS - {"min", "max"})
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; a field takes {', '.join(sorted(KEYS))}.")
    _check_field(where, name, config_class)
    kind = spec.get("type")
    if kind not in TYPES:
        raise UserError(f"{where}: type must be one of {', '.join(TYPES)}. Received: type={kind!r}")
    low, high = spec.get("min_value", spec.get("min")), spec.get("max_value", spec.get("max"))
    values = spec.get("values", ())
    if kind == "fixed":
        if "value" not in spec:
            raise UserError(f"{where}: a fixed field needs value = ...")
        values = (spec["value"],)
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: a choice needs values = [...], a non-empty list. Received: values={values!r}")
        if len({type(v) for v in values}) > 1 and not all(isinstance(v, (int, float)) for v in values):
            raise UserError(f"{where}: a choice's values must be of one type. Received: values={values!r}")
    if kind in ("int", "float"):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise UserError(f"{where}: a {kind} range needs numbers min_value and max_value. "
                            f"Received: min_value={low!r}, max_value={high!r}")
        if kind == "int" and not all(float(v).is_integer() for v in (low, high)):
            raise UserError(f"{where}: an int range needs whole bounds. Received: {low!r}..{high!r}")
        if low >= high:
            raise UserError(f"{where}: min_value must be below max_value. Received: {low!r}..{high!r}")
        sampling = spec.get("sampling", "linear")
        if sampling not in SAMPLINGS:
            raise UserError(f"{where}: sampling must be one of {', '.join(SAMPLINGS)}. Received: {sampling!r}")
        if sampling != "linear" and low <= 0:
            raise UserError(f"{where}: {sampling} sampling needs a positive min_value. Received: {low!r}")
        step = spec.get("step")
        if step is not None and (not isinstance(step, (int, float)) or step <= 0):
            raise UserError(f"{where}: step must be a positive number. Received: step={step!r}")
    parent_values = spec.get("parent_values", ())
    if ("parent_name" in spec) != ("parent_values" in spec):
        raise UserError(f"{where}: a conditional field needs both parent_name and parent_values.")
    param = Param(name=name, type=kind, values=tuple(values), min_value=low, max_value=high, step=spec.get("step"),
                  sampling=spec.get("sampling", "linear"), ordered=spec.get("ordered"), default=spec.get("default"),
                  parent_name=spec.get("parent_name"),
                  parent_values=tuple(parent_values if isinstance(parent_values, list) else [parent_values]))
    if param.default is not None and not param.contains(param.default):
        raise UserError(f"{where}: default = {param.default!r} is not one of the values it searches; give a value "
                        "inside its space, or leave default out (the first trial then takes the base config's).")
    return param


def _check_field(where, name, config_class):
    fields = {f.name for f in dataclasses.fields(config_class)}
    head, _, rest = name.partition(".")
    if head == "stages" and rest:
        number, _, field = rest.partition(".")
        if not number.isdigit() or int(number) < 1 or not field:
            raise UserError(f"{where}: a stage field is stages.N.FIELD with N from 1 (e.g. stages.2.learning_rate).")
        return
    if name == "stages" or name not in fields:
        valid = sorted(fields - {"stages", "fold", "folds"})
        raise UserError(f"{where}: unknown field; search a config field ({', '.join(valid)}) or stages.N.FIELD.")
    if name in ("fold", "folds", "seed"):
        raise UserError(f"{where}: {name} is not a setting to search (tune --folds cross-validates every trial).")


def apply(config, values):
    """`config` with the searched `values` (`{name: value}`; KerasTuner's own `tuner/...` keys
    are ignored) set; raises `UserError` when a value is not valid for its field."""
    flat = {k: v for k, v in values.items() if "." not in k and not k.startswith("tuner/")}
    staged = {k: v for k, v in values.items() if k.startswith("stages.")}
    updates = config_lib.check_keys(type(config), flat, "search space") if flat else {}
    if staged:
        stages = [dict(spec) for spec in config.stages]
        if not stages:
            raise UserError(f"search space: {sorted(staged)[0]} names a stage, but the config has no stages: "
                            "pass a --config with [[stages]].")
        for name, value in staged.items():
            _, number, field = name.split(".", 2)
            if int(number) > len(stages):
                raise UserError(f"search space: {name}: the plan has {len(stages)} stage(s).")
            stages[int(number) - 1][field] = value
        updates["stages"] = tuple(stages)
    return dataclasses.replace(config, **updates)


def check_space(params, config):
    """Checks every bound and choice of `params` against `config` (a built base config):
    each must make a valid config on its own. Raises a `UserError` naming the field."""
    for p in params:
        for value in p.extremes():
            try:
                apply(config, {p.name: value})
            except UserError as e:
                raise UserError(f"--space: {p.name} = {value!r} is not a valid setting ({e}): narrow its range "
                                "to valid values.") from None


def starting_values(params, config):
    """The first trial's settings: each field's `default` from the space file, else the base
    config's own value, so that a search tries the config it starts from before anything else
    (KerasTuner's grid already starts from the defaults). Returns `({name: value}, None)`, or
    `(None, why)` when a field's base value lies outside its space (the search then starts at
    random). Conditional fields count only where their parent's value makes them active."""
    values = {}
    for p in params:
        if p.parent_name and values.get(p.parent_name) not in p.parent_values:
            continue
        if p.type == "fixed":
            values[p.name] = p.values[0]
            continue
        value = p.default if p.default is not None else _base_value(config, p.name)
        if value is None:
            return None, f"{p.name} is not set"
        if not p.contains(value):
            return None, f"{p.name} = {value!r} is outside its space"
        values[p.name] = value
    return values, None


def _base_value(config, name):
    """`config`'s value of a field, or of `stages.N.FIELD` as the plan fills it in."""
    if not name.startswith("stages."):
        return getattr(config, name)
    from tf_finetune.training import stages  # no TensorFlow there

    _, number, field = name.split(".", 2)
    return stages.spec_value(config, int(number) - 1, field)


def grid_size(params):
    """The number of combinations a grid search runs (conditional fields counted only where
    their parent has one of their values); None when a field is a continuous range."""
    if any(p.candidates() is None for p in params):
        return None
    total = 0
    base = [p for p in params if not p.parent_name]
    for combo in itertools.product(*(p.candidates() for p in base)):
        chosen = dict(zip((p.name for p in base), combo))
        count = 1
        for p in params:
            if p.parent_name and chosen.get(p.parent_name) in p.parent_values:
                count *= len(p.candidates())
        total += count
    return total
