package server

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageService is the image service the ImageServer forwards to (*imageservice.Service
// implements it).
type ImageService interface {
	PullImage(context.Context, *runtime.PullImageRequest) (*runtime.PullImageResponse, error)
	ListImages(context.Context, *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error)
	StreamImages(*runtime.StreamImagesRequest, grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error
	ImageStatus(context.Context, *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error)
	RemoveImage(context.Context, *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error)
	ImageFsInfo(context.Context, *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error)
}

// ImageServer implements CRI's ImageService: it validates the requests and forwards them to an
// ImageService, turning stray errors into gRPC statuses.
type ImageServer struct {
	runtime.UnimplementedImageServiceServer
	svc ImageService
}

var _ runtime.ImageServiceServer = (*ImageServer)(nil)

// NewImageServer returns the CRI ImageService on svc.
func NewImageServer(svc ImageService) *ImageServer {
	return &ImageServer{svc: svc}
}

func checkImageSpec(spec *runtime.ImageSpec) (string, error) {
	if spec == nil {
		return "", status.Error(codes.InvalidArgument, "image spec is required")
	}
	if spec.GetImage() == "" {
		return "", status.Error(codes.InvalidArgument, "image reference is empty")
	}
	return spec.GetImage(), nil
}

// PullImage pulls an image with the request's credentials.
func (s *ImageServer) PullImage(ctx context.Context, req *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	if _, err := checkImageSpec(req.GetImage()); err != nil {
		return nil, err
	}
	resp, err := s.svc.PullImage(ctx, req)
	return resp, imageStatusErr(ctx, err)
}

// ListImages lists the local images.
func (s *ImageServer) ListImages(ctx context.Context, req *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	if req == nil {
		req = &runtime.ListImagesRequest{}
	}
	resp, err := s.svc.ListImages(ctx, req)
	return resp, imageStatusErr(ctx, err)
}

// StreamImages lists the local images in several messages.
func (s *ImageServer) StreamImages(req *runtime.StreamImagesRequest, stream grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	if req == nil {
		req = &runtime.StreamImagesRequest{}
	}
	return imageStatusErr(stream.Context(), s.svc.StreamImages(req, stream))
}

// ImageStatus returns the status of an image; a response without image when it is absent.
func (s *ImageServer) ImageStatus(ctx context.Context, req *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	if _, err := checkImageSpec(req.GetImage()); err != nil {
		return nil, err
	}
	resp, err := s.svc.ImageStatus(ctx, req)
	return resp, imageStatusErr(ctx, err)
}

// RemoveImage removes an image with all its names; removing an absent image succeeds.
func (s *ImageServer) RemoveImage(ctx context.Context, req *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	if _, err := checkImageSpec(req.GetImage()); err != nil {
		return nil, err
	}
	resp, err := s.svc.RemoveImage(ctx, req)
	return resp, imageStatusErr(ctx, err)
}

// ImageFsInfo returns the usage of the image filesystems.
func (s *ImageServer) ImageFsInfo(ctx context.Context, req *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	if req == nil {
		req = &runtime.ImageFsInfoRequest{}
	}
	resp, err := s.svc.ImageFsInfo(ctx, req)
	return resp, imageStatusErr(ctx, err)
}

// imageStatusErr leaves gRPC statuses alone and maps other errors: the end of the request's context to
// Canceled / DeadlineExceeded, anything else to Internal.
func imageStatusErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Error(codes.Internal, err.Error())
}
