"""The graded checks: pytest test files (one test per kind of check), their plugin, the float64
oracle they compare against, the cases they draw inputs for, and the helpers they share."""
