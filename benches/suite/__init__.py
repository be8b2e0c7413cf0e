"""The benchmark suite behind ``python -m benches``: the tools compared (``tools``), the data
they read (``data``), what each runs per scenario (``scenarios``), how runs are timed
(``runner``), the machine and versions (``environment``) and the table, JSON and plot
(``report``)."""
