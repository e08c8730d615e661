"""The compiled core: kmquant's hot loops, ahead-of-time compiled with Cython.

One extension module per kernel family, each checked against the NumPy reference by the tests:

- ``_histogram``: distinct colours and their counts (an open-addressing hash table), and the
  per-pixel look-up of a value per colour (the remap);
- ``_seeding``: greedy weighted k-means++;
- ``_lloyd``: the bounded (Yinyang) Lloyd step of the native engine and its helpers;
- ``_dither``: nearest-colour search, Floyd–Steinberg and ordered dithering;
- ``_random_swap``: Fränti's random-swap search (the benchmark's estimate of the optimum).

Every ``def`` function checks the shapes, dtypes and contiguity of its arrays and raises
``ValueError`` for a wrong one; nothing past that check can read or write out of bounds. The
modules need no NumPy at import: they take any buffer (typed memoryviews).
"""
