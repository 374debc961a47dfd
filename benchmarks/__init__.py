"""jacobite's benchmarks: each ``bench_*.py`` runs jacobite and a peer side by side."""
