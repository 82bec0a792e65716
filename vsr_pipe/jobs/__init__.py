"""Scale-out: many files (batch), one long file split in time (split), on local processes or Ray
(runners). Above the pipeline: these call ``pipeline.run.run_to_file`` and never the CLI."""
