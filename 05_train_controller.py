"""Stage 05: train C, the linear controller, with CMA-ES (or another evolution strategy) on MPI workers.

    python 05_train_controller.py car_racing --num_worker 16 --num_worker_trial 2 --num_episode 4 --max_length 1000 --eval_steps 25
    python 05_train_controller.py car_racing ... --init_opt ./controller/car_racing.cma.4.32.es.pk
    python 05_train_controller.py doom_take_cover --dream_mode 1 --temperature 1.15 ...

Started from the shell, the script checks its inputs and runs `mpiexec -np <num_worker + 1>` of itself (the
mpiexec installed with the requirements, one BLAS thread a process), staying to end the whole run on a stop. Rank 0
leads: it asks the optimizer for a population of num_worker x num_worker_trial solutions, hands out their episodes
one a task, each worker's next queued behind the one it plays and the last ones to whichever worker is free (so no
worker idles while another finishes a long one; in the dream, num_worker_trial solutions a task, rolled out as one
batch), and tells the optimizer their average reward over
--num_episode episodes. Started by your own mpiexec (several machines, a host file), it uses the ranks it was given
instead.

Every generation the leader writes, each file whole (controller/training.py lists them): the optimizer state
./controller/<base>.es.pk, the history and curve in ./log, and, every --eval_steps generations, the current mean
evaluated on fresh tracks; ./controller/<base>.best.json only when that score beats every earlier one. Ctrl-C or
SIGTERM stops at once and the last whole checkpoint resumes with --init_opt: the generation count, the history, the
best score and the episode seeds all continue.

--dream_mode 1 (doom_take_cover) evaluates the population inside the MDN-RNN's dream at --temperature; each new
best is also scored in the real game and both scores are logged.

This script parses its flags and starts the processes; the work is library code in controller/: settings.py (the
flags, one TrainingFlags), run.py (the run, resumed or new, settled before its first generation) and leader.py (the
generations on rank 0).
"""

from __future__ import annotations

import os
import sys

from blas import prepare_blas
from cli import UserError, run_cli
from processes import mpi_supervisor, note_stop_signals

if mpi_supervisor() is not None:  # a rank of our mpiexec: signals are noted from the first moment (see there)
    note_stop_signals(mpi_supervisor())

prepare_blas()  # before NumPy loads: every rank one BLAS thread and the pinned kernels, under any mpiexec

SCRIPT = os.path.abspath(__file__)


def parse_args(argv=None):
    """The command line as one frozen, typed, checked settings object (controller.settings.TrainingFlags)."""
    from controller.settings import command_line_parser

    return command_line_parser().parse(argv)


def main(argv=None) -> None:
    from controller.settings import command_line_parser

    parser = command_line_parser()
    flags, given = parser.parse(argv), parser.given(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    from parallel import launched_by_mpi, run_under_mpi

    if not launched_by_mpi():
        from controller.run import TrainingRun, stopped_line
        from files import release_locks

        run = TrainingRun(flags, given, argv, lock=True)  # every check that can fail, before any process is started
        release_locks()  # rank 0 takes them for the run
        sys.exit(run_under_mpi(flags.num_worker + 1, SCRIPT, argv, lambda number: stopped_line(number, run)))

    from parallel import CHILD_MARKER, world

    comm = world()
    if os.environ.get(CHILD_MARKER) == "1" and comm.Get_size() != flags.num_worker + 1:
        # our own relaunch: an mpiexec of another MPI than mpi4py's starts each process as a world of its own
        raise UserError(f"mpiexec started {comm.Get_size()} process(es) in the run's MPI world where "
                        f"{flags.num_worker + 1} were asked: it is not of the MPI that mpi4py was built with; use the "
                        f"mpiexec of the mpich wheel (pip install -r requirements.txt puts it beside Python)")
    if comm.Get_rank() != 0:
        from controller.settings import EvaluatorSettings
        from parallel import serve

        data = comm.bcast(None, root=0)  # rank 0's EvaluatorSettings, once its checks pass (else MPI_Abort ends us)
        serve(comm, lambda: EvaluatorSettings.from_json(data).make_evaluator())  # an error here goes to rank 0
        return
    from controller.leader import run_leader

    run_leader(flags, given, argv, comm)


if __name__ == "__main__":
    from parallel import launched_by_mpi, note_rank_signals

    if launched_by_mpi():  # first thing: a signal that lands anywhere in a rank stops the whole run (see there)
        note_rank_signals()
    run_cli(main)
