"""q_kangaroo smoke harness: matrix -> cells -> environment -> probe -> verdict -> report."""
