"""End-to-end tests: real ``learnchain`` processes over loopback."""

# Tests of consensus mechanics (restarts, joining, relays, budgets) want a chain that keeps
# making blocks, quickly; learning tests use the defaults (no empty blocks, a 1 s commit pace).
EMPTY_BLOCKS = ("--create-empty-blocks", "--commit-timeout", "100")
