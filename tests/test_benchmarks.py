"""The benchmarks' own pieces: what they say about the machine, and the arithmetic of their breakdowns."""

from benchmarks.machine import cpu_info


def test_cpu_info_reads_the_model_and_the_vector_extensions_in_order(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    processor = ("processor\t: {n}\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n"
                 "flags\t\t: fpu sse4_2 avx512f ht avx2 fma avx avx512_vnni sse4a\n\n")
    cpuinfo.write_text(processor.format(n=0) + processor.format(n=1))
    assert cpu_info(str(cpuinfo)) == ("AMD EPYC 9R14", ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni"])


def test_cpu_info_without_the_file_names_the_platform_and_no_extensions(tmp_path):
    model, extensions = cpu_info(str(tmp_path / "missing"))
    assert model and extensions == []
