/// This build of Kiln; plan files record it.
public enum KilnVersion {
    public static let string = "0.1.0"
}
