"""The Numba type of nodekit's guarded kernels, unboxed from the address the
kernel carries.

Compiled code receives a kernel (``rhs``, ``vjp``, ``jac``, an event
function) as a first-class function: Numba's ``FunctionType``, a record of
three addresses.  Numba fills that record when a kernel is passed from Python
by calling back into Python twice per kernel (``_get_wrapper_address`` and
``_get_jit_address``, each after importing a module and unpickling the
signature): about 8 us per kernel on every call of a compiled function,
several times the cost of a short solve's steps.

A :class:`Kernel` (a ``numba.cfunc`` made one by :func:`as_kernel`) is typed
as :class:`KernelType`, a ``FunctionType`` with the same record, calls and
boxing, whose unboxing reads the address stored on the kernel (one attribute
lookup).  The address is the cfunc's own C entry point, the one Numba's
unboxing would find; the signature is the cfunc's, checked when compiled code
using the kernel is typed.
"""
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.ccallback import CFunc
from numba.experimental.function_type import FunctionModel
from numba.extending import NativeValue, register_model, typeof_impl, unbox


class KernelType(types.FunctionType):
    """A guarded kernel in compiled code: a first-class function of one
    signature (``FunctionType``'s record, calls and boxing)."""


register_model(KernelType)(FunctionModel)


class Kernel(CFunc):
    """A compiled kernel (a ``numba.cfunc``) passed to compiled code as a
    :class:`KernelType`; made by :func:`as_kernel`."""


def as_kernel(cf):
    """Make the ``numba.cfunc`` ``cf`` a :class:`Kernel` (in place) and
    return it: it keeps its address (``nodekit_address``) and its type
    (``nodekit_type``), and answers Numba's wrapper-address protocol from
    the address too."""
    if type(cf) is not Kernel:
        address = cf.address
        cf.__class__ = Kernel
        cf.nodekit_address = address
        cf.nodekit_type = KernelType(cf._sig)
        cf.__wrapper_address__ = lambda *sig: address
    return cf


@typeof_impl.register(Kernel)
def _typeof_kernel(val, c):
    return val.nodekit_type


@unbox(KernelType)
def _unbox_kernel(typ, obj, c):
    """The record of a kernel: its C address read from ``nodekit_address``,
    the kernel object itself (for boxing), and no Numba-convention address
    (calls go through the C address).  An object without the attribute
    fails the call with Python's ``AttributeError``."""
    voidptr = c.context.get_value_type(types.voidptr)
    fn = cgutils.create_struct_proxy(typ)(c.context, c.builder)
    slot = cgutils.alloca_once_value(c.builder, ir.Constant(voidptr, None))
    addr = c.pyapi.object_getattr_string(obj, "nodekit_address")
    failed = cgutils.is_null(c.builder, addr)
    with c.builder.if_then(c.builder.not_(failed), likely=True):
        c.builder.store(c.pyapi.long_as_voidptr(addr), slot)
        c.pyapi.decref(addr)
    fn.c_addr = c.builder.load(slot)
    fn.py_addr = c.builder.bitcast(obj, voidptr)
    fn.jit_addr = ir.Constant(voidptr, None)
    return NativeValue(fn._getvalue(), is_error=failed)
