"""The benchmarks' own pieces: what they say about the machine, and the arithmetic of their breakdowns."""

import pytest

from benchmarks.machine import cpu_info


def test_cpu_info_reads_the_model_the_vector_extensions_in_order_and_the_threads_a_core(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    processor = ("processor\t: {n}\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\nsiblings\t: 2\n"
                 "cpu cores\t: 1\nflags\t\t: fpu sse4_2 avx512f ht avx2 fma avx avx512_vnni sse4a\n\n")
    cpuinfo.write_text(processor.format(n=0) + processor.format(n=1))
    assert cpu_info(str(cpuinfo)) == ("AMD EPYC 9R14", ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni"], 2)


def test_cpu_info_without_the_file_names_the_platform_and_no_extensions(tmp_path):
    model, extensions, threads = cpu_info(str(tmp_path / "missing"))
    assert model and extensions == [] and threads is None


def test_a_generations_phases_add_up_from_the_task_times():
    """Two workers from t=1 to t=10: rank 1 busy 4 + 4 s, its last result at 9.9; rank 2 busy 3 s, done at 5.0."""
    from controller.training import generation_phases
    from parallel import TaskTime

    times = [TaskTime(1, 1.0, 5.1, 4.0), TaskTime(2, 1.0, 5.0, 3.0), TaskTime(1, 5.2, 9.9, 4.0)]
    phases = generation_phases(times, 2, started=0.5, asked=1.0, played=10.0, told=10.5, evaluated=10.5, saved=11.0)
    assert phases["episodes"] == pytest.approx((8.0 + 3.0) / 2)
    assert phases["waiting"] == pytest.approx((0.1 + 5.0) / 2)
    assert phases["messages"] == pytest.approx(9.0 - 5.5 - 2.55)
    assert (phases["ask"], phases["update"], phases["evaluation"], phases["save"]) == (0.5, 0.5, 0.0, 0.5)
    assert phases["total"] == 10.5
    # a third worker that got no task idles the whole time
    three = generation_phases(times, 3, started=0.5, asked=1.0, played=10.0, told=10.5, evaluated=10.5, saved=11.0)
    assert three["waiting"] == pytest.approx((0.1 + 5.0 + 9.0) / 3) and three["episodes"] == pytest.approx(11.0 / 3)
