"""Report helpers: sections (glue + provenance), seed numbers, seed-beside-ours tables, parameters, pipeline."""
from .params import PROFILES, load_params, params_file
from .section import Section, start_section
from .seeds import seed_results
from .tables import seed_beside, show

__all__ = ["PROFILES", "Section", "load_params", "params_file", "seed_beside", "seed_results", "show",
           "start_section"]
