/// The deadline tests give calls that should answer at once. It catches hangs; it
/// is not a time limit: every test of the run starts together in one process, so
/// in the first minute an in-process server shares two cores with MiniLM, kernel
/// and statistics tests, and a trivial call has waited over 10 s for a thread.
public let hangGuard: Duration = .seconds(60)
