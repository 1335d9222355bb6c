"""The evolution strategies behind es.py, one module each: the ask/tell bookkeeping they share (strategy), CMA-ES
(cmaes), OpenES and PEPG (gradient), the simple GA (ga), and the checkpoint format (checkpoint). Import them
from es.py."""
