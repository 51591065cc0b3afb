"""The engine: the stages of a job as composable generators (``stages``) and the jobs built from
them: one file or a frame range of it (``lipsync``), one time range (``segment``), many files
(``batch``) and the node graph's whole-batch steps (``graph``)."""
