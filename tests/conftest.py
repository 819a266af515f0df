"""Report which fastce the suite tests (the installed wheel, not the source folder)."""
import os


def pytest_report_header(config):
    import fastce

    variant = fastce.show_config(print_out=False)["simd"]
    return (f"fastce {fastce.__version__} from {os.path.dirname(fastce.__file__)} "
            f"(SIMD {variant})")
