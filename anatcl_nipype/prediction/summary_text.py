"""How numbers and ``mean ± sd`` summaries are shown to people: one rule for the report,
the terminal and the figures' titles (the TSV files keep the full numbers).

3 significant digits; a standard deviation below :data:`SD_ZERO` is rounding noise (a
metric that is the same in every fold: ``pearson_r`` of 1) and is shown as 0. Imports
nothing heavy.

>>> mean_sd_text(1.0, 5.6e-17), mean_sd_text(-5.0312, 11.04), mean_sd_text(0.5, float("nan"))
('1 ± 0', '-5.03 ± 11', '0.5 ± n/a')
"""

import math

#: A standard deviation below this is shown as 0.
SD_ZERO = 1e-12


def sig3(value):
    """``value`` rounded to 3 significant digits when it is a number, else as it is.

    >>> sig3(1439.2), sig3(-0.0001234), sig3(7), sig3(float("nan")), sig3("n/a")
    ('1440', '-0.000123', '7', 'n/a', 'n/a')
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "n/a" if number != number else str(number)
    if number == 0 or 1e-4 <= abs(number) < 1000:
        return f"{number:.3g}"
    if abs(number) >= 1000:
        return str(int(round(number, 2 - int(math.floor(math.log10(abs(number)))))))
    return f"{number:.2e}"


def sd_text(sd):
    """A standard deviation as shown: :func:`sig3`, 0 below :data:`SD_ZERO`.

    >>> sd_text(5.551115123125783e-17), sd_text("0.0123456"), sd_text("n/a")
    ('0', '0.0123', 'n/a')
    """
    try:
        return sig3(0.0 if abs(float(sd)) < SD_ZERO else sd)
    except (TypeError, ValueError):
        return str(sd)


def mean_sd_text(mean, sd):
    """``mean ± sd`` as shown everywhere (see the module docstring)."""
    return f"{sig3(mean)} ± {sd_text(sd)}"
