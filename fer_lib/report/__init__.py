"""Report helpers: sections (glue + provenance), seed numbers, seed-beside-ours tables, parameters, pipeline."""
from ..config.params import PROFILES, load_params, params_file, use_profile
from .section import Section, start_section
from .seeds import seed_results
from .tables import ensemble_row_label, seed_beside, show

__all__ = ["PROFILES", "Section", "ensemble_row_label", "load_params", "params_file", "seed_beside", "seed_results",
           "show", "start_section", "use_profile"]
