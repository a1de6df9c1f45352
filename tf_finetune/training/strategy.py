"""Choose a `tf.distribute` strategy.

`resolve_strategy_name` is the pure decision (what 'auto' means here); `choose_strategy`
gathers the facts from the machine (environment, GPUs, TPU settings) and builds the
strategy. Build the model and compile it inside `strategy.scope()`.

Local CPU-only runs get TensorFlow's default strategy (one replica, no distribution).
`choose_strategy('mirrored')` on a machine without GPUs mirrors over all logical CPU
devices, which is how the tests exercise a real multi-replica strategy on one CPU: split the
CPU with `tf.config.set_logical_device_configuration` before TensorFlow initialises.
"""

import json
import logging
import os

import tensorflow as tf

from tf_finetune.config import STRATEGIES as STRATEGY_NAMES
from tf_finetune.errors import UserError

logger = logging.getLogger(__name__)

# Environment variables that say a TPU is attached (checked without any network call):
# TPU_NAME (Cloud TPU node / GKE), COLAB_TPU_ADDR (Colab), TPU_ACCELERATOR_TYPE (TPU VMs).
TPU_ENV_VARS = ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")


def _num_cluster_tasks(env):
    """Number of chief + worker tasks in TF_CONFIG (0 when TF_CONFIG is unset or empty)."""
    raw = env.get("TF_CONFIG", "")
    if not raw.strip():
        return 0
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(
            f"TF_CONFIG is not valid JSON ({e.msg} at position {e.pos}). "
            f"Received: TF_CONFIG={raw[:80]!r}"
        ) from None
    cluster = config.get("cluster", {}) if isinstance(config, dict) else None
    if not isinstance(cluster, dict):
        raise UserError(
            "TF_CONFIG must be a JSON object with a 'cluster' object, like "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {...}}. '
            f"Received: TF_CONFIG={raw[:80]!r}"
        )
    return sum(len(cluster.get(job) or []) for job in ("chief", "worker"))


def resolve_strategy_name(name, *, env, num_gpus, tpu_configured):
    """Decide which strategy to use, from facts passed in (no side effects).

    Args:
        name: one of 'auto', 'default', 'one_device', 'mirrored', 'multi_worker', 'tpu'.
            Anything but 'auto' is returned as is.
        env: a mapping like `os.environ`; only `TF_CONFIG` is read.
        num_gpus: number of local GPUs.
        tpu_configured: whether the environment says a TPU is attached.

    Returns:
        The concrete strategy name. 'auto' resolves to 'tpu' when a TPU is configured, else
        'multi_worker' when TF_CONFIG's cluster has more than one chief+worker task, else
        'mirrored' with more than one GPU, else 'default'.

    Raises:
        UserError: unknown `name`, or malformed TF_CONFIG.
    """
    if name not in STRATEGY_NAMES:
        expected = ", ".join(repr(n) for n in STRATEGY_NAMES)
        raise UserError(f"Unknown strategy. Expected one of {expected}. Received: name={name!r}")
    if name == "multi_worker":
        _num_cluster_tasks(env)  # fail early on a malformed TF_CONFIG
    if name != "auto":
        return name
    # 1) a TPU wins, 2) then a multi-worker cluster, 3) then several local GPUs
    if tpu_configured:
        return "tpu"
    if _num_cluster_tasks(env) > 1:
        return "multi_worker"
    if num_gpus > 1:
        return "mirrored"
    return "default"


def _tpu_configured(env):
    return any(env.get(var) for var in TPU_ENV_VARS)


def _tpu_strategy(env):
    # 1) where the TPU is: named, Colab's address, or attached to this VM
    if env.get("TPU_NAME"):
        tpu = env["TPU_NAME"]
    elif env.get("COLAB_TPU_ADDR"):
        tpu = "grpc://" + env["COLAB_TPU_ADDR"]
    else:
        tpu = "local"
    # 2) connect and initialise it; any failure means there is no usable TPU
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except Exception as e:  # TF raises ValueError, NotFoundError, InvalidArgumentError, ...
        reason = str(e).split(". ")[0][:160]  # TF's messages run to many lines
        raise UserError(
            f"no TPU found for strategy 'tpu' (tried tpu={tpu!r}): {type(e).__name__}: "
            f"{reason}. Check {', '.join(TPU_ENV_VARS)} or choose another strategy, "
            "e.g. 'default'"
        ) from None


def choose_strategy(name="auto"):
    """Build the `tf.distribute.Strategy` for this machine.

    Args:
        name: one of 'auto', 'default', 'one_device', 'mirrored', 'multi_worker', 'tpu'.
            See `resolve_strategy_name` for what 'auto' picks. 'mirrored' uses all local
            GPUs, or all logical CPU devices when there is no GPU.

    Returns:
        A `tf.distribute.Strategy`; build and compile the model inside `strategy.scope()`.

    Raises:
        UserError: unknown name, malformed TF_CONFIG, or 'tpu' when no TPU can be reached.
    """
    env = os.environ
    gpus = tf.config.list_physical_devices("GPU")
    resolved = resolve_strategy_name(
        name, env=env, num_gpus=len(gpus), tpu_configured=_tpu_configured(env)
    )

    if resolved == "default":
        strategy = tf.distribute.get_strategy()
    elif resolved == "one_device":
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    elif resolved == "mirrored":
        cpus = tf.config.list_logical_devices("CPU")
        if not gpus and len(cpus) > 1:
            strategy = tf.distribute.MirroredStrategy(devices=[d.name for d in cpus])
        else:
            strategy = tf.distribute.MirroredStrategy()
    elif resolved == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:  # tpu
        strategy = _tpu_strategy(env)

    # Debug: the strategy is chosen before the data is read, and bad data must give one line.
    # The run's "Run directory" line and run.json name it.
    logger.debug("Strategy %r resolved to %r: %s", name, resolved, describe_strategy(strategy))
    return strategy


def describe_strategy(strategy):
    """A short description like "MirroredStrategy with 2 replicas".

    Args:
        strategy: a `tf.distribute.Strategy`.
    """
    kind = type(strategy).__name__
    if kind == "_DefaultDistributionStrategy":
        kind = "DefaultStrategy"
    elif isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        kind = "MultiWorkerMirroredStrategy"  # the class is CollectiveAllReduceStrategy
    replicas = strategy.num_replicas_in_sync
    return f"{kind} with {replicas} replica{'' if replicas == 1 else 's'}"
