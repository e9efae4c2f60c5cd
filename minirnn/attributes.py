"""Checked attributes: every public attribute of a layer is checked when assigned.

The layers (:mod:`minirnn.layers`, :mod:`minirnn.bidirectional`) declare, per
attribute, a check of the value alone (its type and range, here), and check the
layer as a whole after each assignment (do the weights still fit ``units``?),
through :class:`Configurable`. A refused value leaves the layer as it was and the
error names the attribute. Accepted values are stored read-only, and everything
the kernels read is derived from them at once, so a call never meets an
inconsistent layer and never pays for the checks.

Also here: the checks of single arguments that the layers' calls share (dtypes,
booleans, sizes, numeric arrays), how weights are stored (:func:`frozen`), and
how a layer is pickled: as its constructor's arguments and the assignments that
give it its weights and states, which :func:`rebuild` replays through the same
checks (never a raw ``__dict__`` update).

May use: numpy and :mod:`minirnn.activations` only.
"""

import numbers

import numpy as np

from . import activations

DTYPES = {"float32": np.float32, "float64": np.float64}
ENGINES = ("numba", "numpy")
def check_dtype(dtype, argument="dtype"):
    """float32 or float64 from a name or NumPy dtype; None is Keras' default, float32."""
    if dtype is None:
        return np.float32
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    try:
        name = np.dtype(dtype).name if not isinstance(dtype, str) else None
    except TypeError:
        name = None
    if name in DTYPES:
        return DTYPES[name]
    raise ValueError(f"`{argument}` must be 'float32' or 'float64'; received {dtype!r}.")


def check_bool(value, argument):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"`{argument}` must be True or False; received {value!r}.")


def check_units(units, argument="units"):
    if isinstance(units, (bool, np.bool_)) or not isinstance(units, numbers.Integral):
        raise TypeError(f"`{argument}` must be a positive integer; received {units!r}.")
    if units <= 0:
        raise ValueError(f"`{argument}` must be a positive integer; received {units}.")
    return int(units)


def check_rate(value, argument):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{argument}` must be a float in [0, 1]; received {value!r}.")
    if not 0 <= value <= 1:
        raise ValueError(f"`{argument}` must be in [0, 1]; received {value}.")
    return float(value)


def check_seed(seed, argument="seed"):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"`{argument}` must be an integer or None; received {seed!r}.")
    if seed is not None and seed < 0:
        raise ValueError(f"`{argument}` must be a non-negative integer or None; received {seed}.")
    return None if seed is None else int(seed)


def check_choice(value, choices, argument):
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        raise ValueError(f"`{argument}` must be one of {choices}; received {value!r}.")
    return value


def numeric_array(value, argument):
    """np.asarray with a TypeError naming the argument for non-numeric data."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise TypeError(
            f"`{argument}` must be a numeric array; could not convert it ({error})."
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"`{argument}` must hold real numbers; received an array of dtype "
            f"{array.dtype}."
        )
    return array


def frozen(array, dtype):
    """A read-only, C-contiguous copy of ``array`` in ``dtype``: stored weights change
    by assignment only, never in place.

    The copy is a read-only view of a private writable array, which the kernels
    get (see :func:`for_kernels`): Numba types read-only arrays apart, and
    checks their type more slowly at every call."""
    return read_only(np.array(array, dtype=dtype, order="C"))


def read_only(array):
    """A read-only view of ``array``, whose own flags stay as they are: how a layer
    hands out arrays it keeps writable (for the kernels, or to replace them)."""
    view = array.view()
    view.setflags(write=False)
    return view


def for_kernels(array):
    """The writable array behind a stored read-only one, for the compiled kernels
    (which never write their weights); the array itself where there is none."""
    base = array.base
    if isinstance(base, np.ndarray) and base.flags.writeable and base.shape == array.shape \
            and base.dtype == array.dtype and base.flags.c_contiguous:
        return base
    return np.array(array, order="C")


class Configurable:
    """Layers whose public attributes are checked whenever they are assigned.

    ``_checks`` maps each such attribute to ``check(layer, value, name)``, which
    checks the value on its own (type, range) and returns what to store.
    ``layer.name = value`` runs that check, stores the result, then calls
    ``layer._configure(name)``, which checks the layer as a whole and derives
    what the kernels read. If either refuses, every attribute keeps its old
    value and the error (naming the attribute) propagates: a layer is never left
    inconsistent. Values live in the instance's ``__dict__``, so reading an
    attribute costs what reading a plain one does; only assignments pay.
    """

    _checks = {}
    _ready = False  # set at the end of __init__: until then, no whole-layer checks

    def __setattr__(self, name, value):
        if name in self._checks:
            self._assign(**{name: value})
        else:
            object.__setattr__(self, name, value)

    def _assign(self, **values):
        """Assign several attributes that only fit together (the weights): each is
        checked alone, then the layer as a whole, once."""
        checked = {name: self._checks[name](self, value, name)
                   for name, value in values.items()}
        saved = dict(self.__dict__)
        self.__dict__.update(checked)
        if not self._ready:
            return
        try:
            self._configure(next(iter(values)))
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _configure(self, changed):
        """Check the whole layer after ``changed`` was assigned; derive kernel inputs."""

    # ---- pickling ------------------------------------------------------------

    def _pickled(self):
        """(constructor arguments, assignments) that rebuild this layer: each
        assignment a dict of attributes assigned together (override)."""
        raise NotImplementedError

    def _plain_attributes(self):
        """The public attributes without a check (a model's layer ``name``)."""
        return {name: value for name, value in self.__dict__.items()
                if not name.startswith("_") and name not in self._checks}

    def __reduce__(self):
        """Pickle (and copy) as the constructor's arguments and the checked
        assignments of weights and states: :func:`rebuild` replays them."""
        arguments, assignments = self._pickled()
        return rebuild, (type(self), arguments, assignments)


# ---- checks of one attribute's value, as Configurable wants them --------------

def plain(check):
    """A Configurable check from a check of the value alone, ``check(value, argument)``."""
    return lambda layer, value, name: check(value, name)


def activation_setting(layer, value, name):
    return activations.canonical(value, name)


def dtype_setting(layer, value, name):
    return np.dtype(check_dtype(value, name)).name


def engine_setting(layer, value, name):
    return check_choice(value, ENGINES, name)


def implementation_setting(layer, value, name):
    if isinstance(value, (bool, np.bool_)) or value not in (1, 2):
        raise ValueError(f"`{name}` must be 1 or 2; received {value!r}.")
    return int(value)


def use_cudnn_setting(layer, value, name):
    if not any(value is choice for choice in ("auto", True, False)) and value != "auto":
        raise ValueError(f"`{name}` must be 'auto', True or False; received {value!r}.")
    return value


def weight_setting(layer, value, name):
    """A weight array, stored read-only in the layer's dtype (None: not built)."""
    if value is None:
        return None
    return frozen(numeric_array(value, name), np.dtype(layer.dtype))


def states_setting(layer, value, name):
    """A stateful layer's states: None, or [h] / [h, c], each (batch, units)."""
    if value is None:
        return None
    where = f"of this stateful {type(layer).__name__}"
    return tuple(frozen(s, np.dtype(layer.dtype))
                 for s in layer._checked_states(value, name, where))


def rebuild(cls, arguments, assignments):
    """A pickled layer again: ``cls(**arguments)``, then each dict of
    ``assignments`` assigned as ``layer.name = value`` is (the checked attributes
    of one dict together, as :meth:`Configurable._assign`). A payload that does not
    fit (a weight of the wrong shape, states of the wrong size) is refused with
    the ValueError or TypeError of those checks; private attributes are refused."""
    if not (isinstance(cls, type) and issubclass(cls, Configurable)):
        raise TypeError(f"a pickled minirnn layer must name a minirnn layer class; "
                        f"received {cls!r}.")
    if not isinstance(arguments, dict) or not isinstance(assignments, (list, tuple)):
        raise TypeError("a pickled minirnn layer holds a dict of arguments and a list of "
                        "assignments.")
    layer = cls(**arguments)
    for values in assignments:
        if not isinstance(values, dict):
            raise TypeError(f"a pickled layer's assignments must be dicts; received "
                            f"{type(values).__name__}.")
        refused = [name for name in values if not isinstance(name, str)
                   or name.startswith("_")
                   or (name not in cls._checks and hasattr(cls, name))]
        if refused:
            raise ValueError(f"a pickled layer may set its public attributes only; "
                             f"received {refused}.")
        checked = {name: value for name, value in values.items() if name in cls._checks}
        if checked:
            layer._assign(**checked)
        for name, value in values.items():
            if name not in checked:
                setattr(layer, name, value)
    return layer
