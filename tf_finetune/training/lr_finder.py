"""The learning-rate range test (Smith 2015; fastai's `lr_find`).

Train for up to `steps` batches while the learning rate grows exponentially from `start` to
`end`, record each batch's loss, and stop once the loss diverges (it exceeds `diverge` times
the lowest smoothed loss seen, or is not finite). The loss is smoothed as fastai does (an
exponential moving average with bias correction, beta 0.98).

The suggestion is fastai's `valley` (its default since fastai 2.5): the longest stretch over
which the smoothed loss keeps going down (a longest decreasing subsequence, so noise does not
cut it short), and the rate two thirds of the way along it, where the loss still falls and
training is stable. The steepest descent before the minimum (fastai's older `lr_steep`) and
the minimum's rate divided by 10 (Smith's rule of thumb) are reported beside it. The model's
weights are put back afterwards.
"""

import dataclasses
import logging
import math

import numpy as np

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RangeTest:
    """The sweep's record and what it suggests.

    Attributes:
        rates, losses, smoothed: per batch, the learning rate, its loss and the smoothed loss.
        suggestion: the suggested learning rate (fastai's valley).
        steepest_rate: where the smoothed loss falls fastest before its minimum.
        minimum_rate: the rate at the lowest smoothed loss.
        diverged_at: the rate at which the loss diverged, or None when the sweep ended first.
    """

    rates: list
    losses: list
    smoothed: list
    suggestion: float
    steepest_rate: float
    minimum_rate: float
    diverged_at: float = None

    def how_chosen(self):
        return ("two thirds along the longest stretch where the smoothed loss keeps falling (fastai's "
                f"valley); the steepest descent is at {self.steepest_rate:.3g}, the minimum at "
                f"{self.minimum_rate:.3g} (a tenth of it: {self.minimum_rate / 10:.3g})")


def exponential_rates(start, end, steps):
    """`steps` rates from `start` to `end`, evenly spaced in log space."""
    if not 0 < start < end or steps < 2:
        raise ValueError(f"Need 0 < start < end and steps >= 2. Received: start={start}, end={end}, steps={steps}")
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


def run(model, batches, *, set_rate, steps=100, start=1e-7, end=10.0, diverge=4.0, beta=0.98, class_weight=None):
    """Runs the range test on a compiled `model`; returns a `RangeTest`.

    Args:
        model: a compiled Keras model.
        batches: an iterable of `(inputs, labels)` training batches, at least `steps` long
            (e.g. a repeated dataset).
        set_rate: `fn(rate)` that sets the optimizer's learning rate before a step.
        steps, start, end: the sweep: `steps` batches, rates from `start` to `end`.
        diverge: stop when the loss exceeds this times the lowest smoothed loss.
        beta: smoothing of the loss.
        class_weight: `{class index: weight}` for the training loss, as the run would use.
    """
    weights = [w.copy() for w in model.get_weights()]
    rates, losses, smoothed = [], [], []
    average, best, diverged_at = 0.0, math.inf, None
    try:
        for step, (rate, batch) in enumerate(zip(exponential_rates(start, end, steps), batches)):
            set_rate(rate)
            logs = model.train_on_batch(*batch, class_weight=class_weight, return_dict=True)
            loss = float(logs["loss"])
            rates.append(rate)
            losses.append(loss)
            if not math.isfinite(loss):
                diverged_at = rate
                break
            average = beta * average + (1 - beta) * loss
            smooth = average / (1 - beta ** (step + 1))
            smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > diverge * best:
                diverged_at = rate
                break
    finally:
        model.set_weights(weights)
    if len(smoothed) < 3:
        raise ValueError(f"The loss diverged within {len(losses)} steps of the sweep: lower its start rate "
                         f"(it started at {start:g}).")
    return RangeTest(rates, losses, smoothed, *suggest(rates[: len(smoothed)], smoothed), diverged_at)


def suggest(rates, smoothed):
    """`(valley rate, steepest-descent rate, minimum rate)` of a smoothed loss curve."""
    return valley(rates, smoothed), *steepest_and_minimum(rates, smoothed)


def valley(rates, smoothed):
    """fastai's `valley`: two thirds along the longest decreasing run of the loss (a longest
    decreasing subsequence, O(n^2) for the few hundred points of a sweep)."""
    n = len(smoothed)
    longest = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if smoothed[i] < smoothed[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[end]:
            end = i
            start = end - longest[end]
    third = (end - start) / 3
    return float(rates[max(0, start + int(third) + int(third / 2))])


def steepest_and_minimum(rates, smoothed):
    """`(steepest-descent rate, minimum rate)` of a smoothed loss curve over `rates`."""
    lowest = int(np.argmin(smoothed))
    log_rates = np.log10(rates)
    slopes = np.gradient(np.asarray(smoothed), log_rates)
    # Skip the first points (the average warms up) and look no further than the minimum.
    first = min(len(rates) // 10, max(lowest - 1, 0))
    window = slopes[first: lowest + 1] if lowest > first else slopes[: lowest + 1]
    steepest = first + int(np.argmin(window)) if lowest > first else int(np.argmin(window))
    return float(rates[steepest]), float(rates[lowest])
