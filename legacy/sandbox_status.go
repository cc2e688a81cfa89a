package legacy

func SandboxAsContainer(typ string, st *SandboxStatus) *Container {
	state := ContainerStateExited
	if st.State == SandboxStateReady {
		state = ContainerStateRunning
	}
	return &Container{ID: BuildContainerID(typ, st.ID), Name: st.Name, Created: st.CreatedAt, State: state}
}
