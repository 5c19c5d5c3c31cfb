// Error classes named as the Python scorer's (scorer/errors.py).
export class TablescoreError extends Error {
  get name () { return this.constructor.name }
}
export class BundleFormatError extends TablescoreError {}
export class IncompatibleBundleError extends TablescoreError {}
export class IntegrityError extends TablescoreError {}
export class VerificationError extends TablescoreError {}
export class InputError extends TablescoreError {}
export class MissingFieldError extends InputError {}
export class MissingValueError extends InputError {}
export class FieldTypeError extends InputError {}
export class UnknownCategoryError extends InputError {}
