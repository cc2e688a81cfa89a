package legacy

// HandlerFeatures are what a runtime handler can do on this host, as CRI's Status reports them.
type HandlerFeatures struct {
	RecursiveReadOnlyMounts bool
	UserNamespaces          bool
}
