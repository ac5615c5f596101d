package import Synchronization

/// Bugs the tests can switch on to prove that they would catch them (the model-based random test
/// must find each and shrink it to a few steps). Never set outside tests.
package enum SeededBugs {
    /// A placeholder's number is never closed after its buffer is released: a descriptor leak.
    package static let skipPlaceholderClose = Atomic<Bool>(false)
}
