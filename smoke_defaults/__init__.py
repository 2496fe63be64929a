"""What ships with the harness besides its code: the default matrix (q_kangaroo's, with its
reference module) and the clean-image recipes. In a checkout these are links to the top-level
``matrix.yaml``, ``q_kangaroo_reference.py`` and ``images/``; an installed harness has copies."""
